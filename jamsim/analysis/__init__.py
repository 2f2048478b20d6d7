"""Analysis of jamsim results folders: one loader and one set of metrics for
simulation and testnet runs alike, because they share the event-table format."""

from jamsim.analysis.compare import compare
from jamsim.analysis.run import Run, load_run, run_from_tables

__all__ = ["Run", "compare", "load_run", "run_from_tables"]
