"""Public helpers for testing code built on the sans-IO core.

They ship with the package (not under ``tests/``) so projects that write their own
driver or policy can reuse them, but nothing in the runtimes imports them: the
core itself stays free of test-only code.  Like the core they do no I/O and read
no clock.
"""
