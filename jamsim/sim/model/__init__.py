"""The ``model`` fidelity: QUIC abstracted into a few timed packets per connection.

Cheap enough for the full 1023-validator set; :mod:`jamsim.sim.model.transport`
implements the driver's :class:`jamsim.sim.fidelity.Transport` protocol.
"""
