"""What the simulation driver asks of a fidelity's transport: the ``Transport`` protocol.

The driver (:mod:`jamsim.sim.simulation`) runs the managers and the timeline; a
*fidelity* decides what one connection between two simulated nodes is. The
``model`` fidelity (:class:`jamsim.sim.model.transport.ModelTransport`) abstracts
QUIC into a handful of timed packets so 1023 validators stay cheap; the ``quic``
fidelity (:class:`jamsim.sim.quic.transport.QuicTransport`) runs two real aioquic
connections. Both implement this protocol, so the driver carries out a manager's
actions and the harness's faults the same way whichever runs, and neither
fidelity's module needs the other.

This module only names the surface (it is a :class:`typing.Protocol`: the
transports conform structurally and mypy checks that where the driver builds
them). What only the model can do (catch up on dials across a cut path, notice a
restarted peer by a stateless reset) the driver asks of a ``ModelTransport``
explicitly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from jamsim.sim.simulation import SimNode

__all__ = ["Transport"]


class Transport(Protocol):
    """One connection attempt from node ``a`` (the dialer) to node ``b``.

    Created by the driver for each ``Dial`` action; it reports what its two ends
    observe to their managers itself (``Simulation.feed``) and tells the driver
    when both ends are done (``Simulation.forget_transport``).
    """

    tid: int
    """The driver's id of this transport (creation order: the order of reassessment)."""
    a: int
    """Index of the dialing node."""
    b: int
    """Index of the node dialed."""

    def start(self) -> None:
        """Begin the handshake (the dialer's first packet)."""

    def accept(self) -> None:
        """The acceptor's manager kept this inbound connection (``AcceptInbound``)."""

    def close(self, node: SimNode, reason: str) -> None:
        """``node``'s manager closed its end (``CloseConnection``); not reported back."""

    def reassess(self) -> None:
        """The topology changed (partition, heal, crash, pause): re-judge the path."""

    def node_died(self, client: bool) -> None:
        """The process of one end (``client``: the dialer's) crashed, silently."""

    def paused_too_long(self, client: bool, paused_for: float) -> bool:
        """On resume: did this end's own timer fall due while its process slept?"""

    def expire(self, client: bool) -> None:
        """Handle that overdue timer now, before the packets queued during the pause."""
