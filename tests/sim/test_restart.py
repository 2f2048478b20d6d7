"""Restarted peers: stateless resets end the dead connections, and the duplicate
rule keeps the new connection rather than the dead one it replaces."""

from __future__ import annotations

import pytest

from jamsim import native_status
from jamsim.core.policy import ConnectionPolicy
from jamsim.identity import ValidatorSet
from jamsim.sim.network import LatencySpec, LinkSpec, NetworkConfig
from jamsim.sim.simulation import Simulation
from jamsim.sim.transport import ModelTransport
from jamsim.telemetry.records import EventRecord

ONE_WAY = 0.04
NET = NetworkConfig(LinkSpec(LatencySpec(ONE_WAY)))
RESTARTED = range(4)


def _kill_and_restart(policy: ConnectionPolicy, traffic: bool = False,
                      v: int = 16) -> tuple[Simulation, list[EventRecord]]:
    records: list[EventRecord] = []
    sim = Simulation(ValidatorSet.dev(v, seed=1), NET, policy, seed=1,
                     on_event=records.append, traffic=traffic)
    for i in RESTARTED:
        sim.at(30.0, lambda i=i: sim.crash(i))
        sim.at(33.0, lambda i=i: sim.restart(i))
    sim.run(60.0)
    return sim, records


def _new_connections_refused(records: list[EventRecord], after: float) -> int:
    opened = {(r.node, r.conn_id) for r in records
              if r.event in ("connected_in", "connected_out") and r.time >= after}
    return sum(1 for r in records if r.event == "disconnected" and r.time >= after
               and r.reason == "duplicate connection" and (r.node, r.conn_id) in opened
               and r.node not in RESTARTED)


def test_restarted_validators_are_back_within_one_keep_alive_and_a_retry() -> None:
    """Each peer holding a connection to a restarted process learns of it from the
    stateless reset answering its next keep-alive (at most one keep-alive interval
    after the restart, plus an RTT); the preferred side then redials after at most
    one initial retry delay, a handshake takes 1.5 RTT, and samples come every 1 s.
    Before resets, the peers only noticed by their idle timeout (14 s here)."""
    policy = ConnectionPolicy.preset("jamnp-s")
    sim, records = _kill_and_restart(policy)
    assert sim.keepalive_interval is not None
    rtt = 2 * ONE_WAY
    bound = sim.keepalive_interval + rtt + policy.initial_retry + 1.5 * rtt + \
        sim.sample_interval
    took = sim.time_to_full_mesh(after=33.0)
    assert took is not None and took - 33.0 <= bound
    resets = [r for r in records if r.reason == "stateless reset"]
    assert resets and all(r.node not in RESTARTED and r.peer in RESTARTED for r in resets)
    assert all(33.0 < r.time <= 33.0 + sim.keepalive_interval + rtt + 1e-9 for r in resets)
    assert _new_connections_refused(records, 33.0) == 0


def test_without_keep_alives_or_traffic_no_reset_ever_comes() -> None:
    """jamixir sends nothing on an idle connection: its peers never learn."""
    _, records = _kill_and_restart(ConnectionPolicy.preset("jamixir"), v=6)
    assert not [r for r in records if r.reason == "stateless reset"]


def test_with_traffic_the_next_slot_brings_the_reset() -> None:
    _, records = _kill_and_restart(ConnectionPolicy.preset("jamixir"), traffic=True, v=6)
    resets = [r for r in records if r.reason == "stateless reset"]
    assert resets
    assert {round(r.time, 9) for r in resets} == {36.0 + 2 * ONE_WAY}  # slot tick 36 s


def test_a_restarted_peers_new_connection_beats_the_silent_old_one() -> None:
    """Keep-alives every 20 s make the reset slow; the restarted side's fallback
    dial (1 s) arrives first and must win over the silent connection it replaces,
    at both ends: the mesh is back one fallback delay plus a handshake later."""
    policy = ConnectionPolicy.preset("jamnp-s", idle_timeout=60.0, keep_alive_interval=20.0,
                                     fallback_after=1.0)
    sim, records = _kill_and_restart(policy)
    took = sim.time_to_full_mesh(after=33.0)
    assert took is not None
    assert took - 33.0 <= policy.fallback_after + 1.5 * 2 * ONE_WAY + sim.sample_interval
    assert _new_connections_refused(records, 33.0) == 0


@pytest.mark.skipif(native_status().state == "compiled",
                    reason="compiled classes cannot be patched")
def test_without_the_silence_report_the_dead_connection_wins(
        monkeypatch: pytest.MonkeyPatch) -> None:
    policy = ConnectionPolicy.preset("jamnp-s", idle_timeout=60.0, keep_alive_interval=20.0,
                                     fallback_after=1.0)
    monkeypatch.setattr(ModelTransport, "_report_silence", lambda *_: None)
    _, records = _kill_and_restart(policy)
    assert _new_connections_refused(records, 33.0) > 0
