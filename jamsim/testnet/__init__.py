"""Real-process testnets (local processes, docker compose, swarm) behind one interface.

See :mod:`jamsim.testnet.base` for the backend protocol and timeline vocabulary.
"""
