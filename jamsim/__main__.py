"""``python -m jamsim`` is the ``jamsim`` command."""

from jamsim.cli import main

main()
