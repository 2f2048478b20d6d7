"""The ``quic`` fidelity: real aioquic connections driven sans-IO in virtual time.

:mod:`~jamsim.sim.quic.transport` implements the driver's
:class:`jamsim.sim.fidelity.Transport` protocol; :mod:`~jamsim.sim.quic.keyring`
supplies the private keys TLS needs; :mod:`~jamsim.sim.quic.slot_traffic` sends JAM
slot traffic on the connections' streams. The rest trims memory so thousands of
connections fit in one process: :mod:`~jamsim.sim.quic.trimmed_connection` (the
connection class and when it trims), :mod:`~jamsim.sim.quic.packet_protection`,
:mod:`~jamsim.sim.quic.key_shares` and :mod:`~jamsim.sim.quic.handshake_stand_ins`.
"""
