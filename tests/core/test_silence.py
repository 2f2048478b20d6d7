"""PeerSilence: a connection whose peer went silent loses a duplicate contest."""

from __future__ import annotations

from jamsim.core.actions import AcceptInbound, CloseConnection, Dial
from jamsim.core.events import (
    ConnectionEstablished,
    InboundHandshake,
    PeerSilence,
    ValidatorSetChanged,
)
from jamsim.core.manager import ConnectionManager
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import PeerAddress
from tests.core.helpers import endpoints, ordered_pair

POLICY = ConnectionPolicy.preset("jamnp-s")
ADDR = PeerAddress("127.0.0.1", 9)


def _connected(local: bytes, remote: bytes) -> tuple[ConnectionManager, int]:
    """``local`` (the preferred initiator) holding a live outbound connection."""
    m = ConnectionManager(local, POLICY)
    m.handle(ValidatorSetChanged(current=endpoints([local, remote])), 0.0)
    dial = next(a for a in m.drain_actions() if isinstance(a, Dial))
    m.handle(ConnectionEstablished(dial.conn_id, remote), 0.1)
    m.drain_actions()
    return m, dial.conn_id


def test_a_silent_connection_loses_to_a_restarted_peers_new_one() -> None:
    p, x = ordered_pair()
    for since, survivor in ((30.0, "new"), (None, "old")):
        m, old = _connected(p, x)
        new = m.allocate_connection_id()
        m.handle(PeerSilence(old, since), 38.0)
        m.handle(InboundHandshake(new, x, ADDR), 38.0)
        out = m.drain_actions()
        if survivor == "new":
            assert m.live_connection(x) == new and AcceptInbound(new, x) in out
            assert CloseConnection(old, "duplicate connection") in out
        else:  # the preferred initiator's connection wins, as before
            assert m.live_connection(x) == old
            assert CloseConnection(new, "duplicate connection") in out


def test_silence_is_ignored_for_connections_not_live_and_cleared_by_none() -> None:
    p, x = ordered_pair()
    m, old = _connected(p, x)
    m.handle(PeerSilence(999, 1.0), 5.0)  # unknown id: ignored
    m.handle(PeerSilence(old, 3.0), 5.0)
    m.handle(PeerSilence(old, None), 6.0)  # it answers again
    new = m.allocate_connection_id()
    m.handle(InboundHandshake(new, x, ADDR), 7.0)
    assert m.live_connection(x) == old
