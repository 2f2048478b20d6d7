"""JAM slot traffic: the schedule every runtime sends, its delivery tables and metrics.

``config`` (sizes, slot clock), ``schedule`` (who sends what when: pure, sans-IO),
``records`` (``blocks.parquet`` / ``assurances.parquet``), ``late`` (which late
deliveries every runtime records), ``overlay`` (the ``model`` fidelity's per-slot
analytic delivery).
"""
