"""Derive connection sessions and pair links from the event table.

A *session* is one node's view of one connection: it opens at ``connected_out`` /
``connected_in`` and closes at the matching ``disconnected`` (same node, same
conn_id; or same peer when conn_id is unknown). A *link* is a pair-level interval
during which BOTH ends hold an open session to each other, which is the same
definition ConnectivitySample.links_up uses, so the two views can be checked
against each other.
"""

from __future__ import annotations

import math
from collections import defaultdict

import pandas as pd

__all__ = ["LINK_COLUMNS", "SESSION_COLUMNS", "derive_links", "derive_sessions", "pair_of"]

SESSION_COLUMNS = ["a", "b", "node", "peer", "direction", "conn_id", "up_at", "down_at",
                   "duration", "reason", "open"]
LINK_COLUMNS = ["a", "b", "up_at", "down_at", "duration", "open"]

_UP = {"connected_out": "out", "connected_in": "in"}


def pair_of(i: int, j: int) -> tuple[int, int]:
    """Unordered pair key (min, max)."""
    return (i, j) if i < j else (j, i)


def derive_sessions(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """Per-node sessions; sessions still open at the end get ``down_at=NaN``
    and a duration measured to ``end_time`` (``open=True``)."""
    open_: dict[tuple[int, int], dict[str, object]] = {}
    rows: list[dict[str, object]] = []
    relevant = events[events["event"].isin([*_UP, "disconnected"]) & (events["peer"] >= 0)]
    for ev in relevant.itertuples(index=False):
        node, peer, cid = int(ev.node), int(ev.peer), int(ev.conn_id)
        if ev.event in _UP:
            a, b = pair_of(node, peer)
            open_[(node, cid if cid >= 0 else -1 - peer)] = {
                "a": a, "b": b, "node": node, "peer": peer, "direction": _UP[ev.event],
                "conn_id": cid, "up_at": float(ev.time)}
            continue
        key = (node, cid) if cid >= 0 and (node, cid) in open_ else None
        if key is None:  # unknown conn id: close this node's oldest session to peer
            cands = [k for k, s in open_.items() if s["node"] == node and s["peer"] == peer]
            key = cands[0] if cands else None
        if key is None:
            continue
        s = open_.pop(key)
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": float(ev.time), "duration": float(ev.time) - up,
                     "reason": str(ev.reason), "open": False})
    for s in open_.values():
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": math.nan, "duration": end_time - up,
                     "reason": "", "open": True})
    df = pd.DataFrame(rows, columns=SESSION_COLUMNS)
    return df.sort_values(["up_at", "node", "peer"], kind="stable").reset_index(drop=True)


def derive_links(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """Pair-level up intervals: a pair is up while both ends hold a session."""
    counts: dict[tuple[int, int], int] = defaultdict(int)  # (node, peer) -> open sessions
    conn_peer: dict[tuple[int, int], int] = {}
    up_since: dict[tuple[int, int], float] = {}
    rows: list[dict[str, object]] = []
    relevant = events[events["event"].isin([*_UP, "disconnected"]) & (events["peer"] >= 0)]
    for ev in relevant.itertuples(index=False):
        node, peer, cid, t = int(ev.node), int(ev.peer), int(ev.conn_id), float(ev.time)
        pair = pair_of(node, peer)
        before = counts[(node, peer)] > 0 and counts[(peer, node)] > 0
        if ev.event in _UP:
            counts[(node, peer)] += 1
            conn_peer[(node, cid)] = peer
        else:
            if cid >= 0 and (node, cid) not in conn_peer:
                continue  # a disconnect for a connection that never came up
            conn_peer.pop((node, cid), None)
            counts[(node, peer)] = max(0, counts[(node, peer)] - 1)
        after = counts[(node, peer)] > 0 and counts[(peer, node)] > 0
        if after and not before:
            up_since[pair] = t
        elif before and not after:
            start = up_since.pop(pair)
            rows.append({"a": pair[0], "b": pair[1], "up_at": start, "down_at": t,
                         "duration": t - start, "open": False})
    for pair, start in up_since.items():
        rows.append({"a": pair[0], "b": pair[1], "up_at": start, "down_at": math.nan,
                     "duration": end_time - start, "open": True})
    df = pd.DataFrame(rows, columns=LINK_COLUMNS)
    return df.sort_values(["up_at", "a", "b"], kind="stable").reset_index(drop=True)


def links_up_at(links: pd.DataFrame, t: float) -> list[tuple[int, int]]:
    """Pairs whose link interval covers time ``t`` (up_at <= t < down_at)."""
    mask = (links["up_at"] <= t) & (links["down_at"].isna() | (links["down_at"] > t))
    sub = links[mask]
    return sorted({(int(a), int(b)) for a, b in zip(sub["a"], sub["b"], strict=True)})
