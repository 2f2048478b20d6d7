"""Derive connection sessions and pair links from the event table.

A *session* is one node's view of one connection: it opens at ``connected_out`` /
``connected_in`` and closes at the matching ``disconnected`` (same node, same
conn_id; or same peer when conn_id is unknown). A *link* is a pair-level interval
during which BOTH ends hold an open session to each other, which is the same
definition ConnectivitySample.links_up uses, so the two views can be checked
against each other.

Both are defined by replaying the event table in order, which took ~20 s per
table on a 2.5-million-row run. When the events are *regular* -- every event
has a connection id, no node names itself, and every disconnect comes right
after a connect under its (node, id) and names the same peer -- the replay's
outcome is computed with whole-array operations instead (sorts, shifts, segment
cumsums). Re-used ids (a restarted node counts from 1 again) are regular. Any
other table (unknown ids, stray disconnects, self-pairs) takes the replay, so
results never depend on which path ran; tests/analysis/test_vectorised.py
checks both against the original code.
"""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["LINK_COLUMNS", "SESSION_COLUMNS", "SESSION_EVENTS", "derive_links",
           "derive_sessions", "links_up_at", "live_mask", "pair_of"]

SESSION_COLUMNS = ["a", "b", "node", "peer", "direction", "conn_id", "up_at", "down_at",
                   "duration", "reason", "open"]
LINK_COLUMNS = ["a", "b", "up_at", "down_at", "duration", "open"]

_UP = {"connected_out": "out", "connected_in": "in"}
SESSION_EVENTS: tuple[str, ...] = (*_UP, "disconnected")
"""The only events sessions and links are derived from: a loader reads just these."""


def pair_of(i: int, j: int) -> tuple[int, int]:
    """Unordered pair key (min, max)."""
    return (i, j) if i < j else (j, i)


@dataclass(frozen=True)
class _Relevant:
    """Connect/disconnect events with a known peer, in table order, as arrays."""

    time: np.ndarray
    node: np.ndarray
    peer: np.ndarray
    conn_id: np.ndarray
    up: np.ndarray  # connected_out / connected_in (else disconnected)
    out: np.ndarray  # connected_out
    reason: np.ndarray  # object array, as stored

    def __len__(self) -> int:
        return len(self.time)


def _relevant(events: pd.DataFrame) -> tuple[pd.DataFrame, _Relevant]:
    mask = events["event"].isin(list(SESSION_EVENTS)) & (events["peer"] >= 0)
    rel = events.loc[mask, ["time", "node", "peer", "event", "conn_id", "reason"]]
    name = rel["event"].to_numpy(dtype=object)
    out = name == "connected_out"
    return rel, _Relevant(
        time=rel["time"].to_numpy(dtype=float), node=rel["node"].to_numpy(dtype=np.int64),
        peer=rel["peer"].to_numpy(dtype=np.int64),
        conn_id=rel["conn_id"].to_numpy(dtype=np.int64), up=out | (name == "connected_in"),
        out=out, reason=rel["reason"].to_numpy(dtype=object))


def _starts(*keys: np.ndarray) -> np.ndarray:
    """Rows that begin a new group in arrays sorted by ``keys``."""
    start = np.zeros(len(keys[0]), dtype=bool)
    if len(start):
        start[0] = True
        for k in keys:
            start[1:] |= k[1:] != k[:-1]
    return start


@dataclass(frozen=True)
class _Connections:
    """Relevant events grouped by (node, conn_id), each group in event order."""

    order: np.ndarray  # event positions, grouped
    start: np.ndarray  # grouped row begins a group
    closes: np.ndarray  # grouped row is a disconnect right after a connect


def _by_connection(r: _Relevant) -> _Connections | None:
    """None unless every event has a connection id and no node names itself.

    Then the replay's dict look-ups reduce to array facts: a connect re-using an
    id that is still open (a restarted node counts from 1 again) replaces the
    older session, and a disconnect right after a connect of its group closes
    that connect; any other disconnect finds nothing under its id.
    """
    if (r.conn_id < 0).any() or (r.node == r.peer).any():
        return None
    order = np.lexsort((np.arange(len(r)), r.conn_id, r.node))
    up = r.up[order]
    start = _starts(r.node[order], r.conn_id[order])
    after_up = np.append(False, up[:-1]) & ~start
    return _Connections(order=order, start=start, closes=~up & after_up)


def _str_array(values: list[str]) -> pd.api.extensions.ExtensionArray:
    return pd.array(values, dtype="str")


def derive_sessions(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """Per-node sessions; sessions still open at the end get ``down_at=NaN``
    and a duration measured to ``end_time`` (``open=True``)."""
    rel, r = _relevant(events)
    conns = _by_connection(r) if len(r) else None
    # a disconnect that closes nothing under its id made the replay search by peer
    if conns is None or not (r.up[conns.order] | conns.closes).all():
        return _replay_sessions(rel, end_time)
    order, start, closes = conns.order, conns.start, conns.closes
    up = r.up[order]
    close_pos = np.flatnonzero(closes)
    downs = order[close_pos]
    by_down = np.argsort(downs, kind="stable")  # closed rows come in disconnect order
    closed_down, closed_up = downs[by_down], order[close_pos - 1][by_down]
    # still open: a group's last connect. Its row sits where the replay's dict put
    # the key, i.e. at the first connect of the group's trailing run of connects
    last = np.append(start[1:], True) & up
    run_begins = up & (start | np.append(False, ~up[:-1]))
    run_first = np.maximum.accumulate(np.where(run_begins, np.arange(len(up)), 0))
    open_pos = np.flatnonzero(last)
    open_up = order[open_pos][np.argsort(order[run_first[open_pos]], kind="stable")]
    up_rows = np.concatenate([closed_up, open_up])
    n_closed = len(closed_up)
    node, peer, up_at = r.node[up_rows], r.peer[up_rows], r.time[up_rows]
    down_at = np.concatenate([r.time[closed_down], np.full(len(open_up), np.nan)])
    duration = np.concatenate([r.time[closed_down] - up_at[:n_closed],
                               end_time - up_at[n_closed:]])
    reason = [str(x) for x in r.reason[closed_down]] + [""] * len(open_up)
    df = pd.DataFrame({
        "a": np.minimum(node, peer), "b": np.maximum(node, peer), "node": node, "peer": peer,
        "direction": _str_array(np.where(r.out[up_rows], "out", "in").tolist()),
        "conn_id": r.conn_id[up_rows], "up_at": up_at, "down_at": down_at,
        "duration": duration, "reason": _str_array(reason),
        "open": np.arange(len(up_rows)) >= n_closed}, columns=SESSION_COLUMNS)
    return df.sort_values(["up_at", "node", "peer"], kind="stable").reset_index(drop=True)


def _rows(relevant: pd.DataFrame) -> zip[tuple[float, int, int, str, int, object]]:
    """(time, node, peer, event, conn_id, reason) per event as plain Python
    values; iterating lists is several times faster than ``itertuples``."""
    return zip(relevant["time"].to_numpy(dtype=float).tolist(),
               relevant["node"].to_numpy(dtype=np.int64).tolist(),
               relevant["peer"].to_numpy(dtype=np.int64).tolist(),
               relevant["event"].to_numpy(dtype=object).tolist(),
               relevant["conn_id"].to_numpy(dtype=np.int64).tolist(),
               relevant["reason"].to_numpy(dtype=object).tolist(), strict=True)


def _replay_sessions(relevant: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """The exact event-by-event derivation, for tables that are not regular.

    Open sessions live in a dict keyed (node, conn id), or (node, -1 - peer)
    when the id is unknown; a re-used key replaces the session in place. A
    disconnect whose id matches nothing closes the node's oldest open session
    to that peer, "oldest" meaning first in the dict's order; ``position`` and
    ``by_peer`` find it without scanning every open session.
    """
    open_: dict[tuple[int, int], dict[str, object]] = {}
    position: dict[tuple[int, int], int] = {}  # the key's place in open_'s order
    inserted = itertools.count()
    by_peer: dict[tuple[int, int], set[tuple[int, int]]] = defaultdict(set)
    rows: list[dict[str, object]] = []
    for time, node, peer, event, cid, reason in _rows(relevant):
        if event in _UP:
            a, b = pair_of(node, peer)
            key = (node, cid if cid >= 0 else -1 - peer)
            old = open_.get(key)
            if old is None:
                position[key] = next(inserted)
            else:
                by_peer[(node, int(old["peer"]))].discard(key)  # type: ignore[call-overload]
            by_peer[(node, peer)].add(key)
            open_[key] = {"a": a, "b": b, "node": node, "peer": peer,
                          "direction": _UP[event], "conn_id": cid, "up_at": time}
            continue
        found: tuple[int, int] | None = (node, cid) if cid >= 0 and (node, cid) in open_ \
            else None
        if found is None:  # unknown conn id: close this node's oldest session to peer
            cands = by_peer.get((node, peer))
            found = min(cands, key=position.__getitem__) if cands else None
        if found is None:
            continue
        s = open_.pop(found)
        del position[found]
        by_peer[(node, int(s["peer"]))].discard(found)  # type: ignore[call-overload]
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": time, "duration": time - up,
                     "reason": str(reason), "open": False})
    for s in open_.values():
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": math.nan, "duration": end_time - up,
                     "reason": "", "open": True})
    df = pd.DataFrame(rows, columns=SESSION_COLUMNS)
    return df.sort_values(["up_at", "node", "peer"], kind="stable").reset_index(drop=True)


def _segment_cumsum(values: np.ndarray, start: np.ndarray) -> np.ndarray:
    """Running sum of integer ``values`` restarting at each ``start`` row."""
    total = np.cumsum(values)
    first = np.flatnonzero(start)
    base = total[first] - values[first]
    result: np.ndarray = total - base[np.cumsum(start) - 1]
    return result


def derive_links(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """Pair-level up intervals: a pair is up while both ends hold a session."""
    rel, r = _relevant(events)
    conns = _by_connection(r) if len(r) else None
    if conns is not None:
        # the replay decrements the disconnect's own peer, clamped at zero; with the
        # connect's peer every decrement has its increment and the clamp never bites
        closing = conns.order[conns.closes]
        if not (r.peer[closing] == r.peer[conns.order[np.flatnonzero(conns.closes) - 1]]).all():
            conns = None
    if conns is None:
        return _replay_links(rel, end_time)
    # only connects and the disconnects that close one count; the rest are ignored
    counted = r.up.copy()
    counted[closing] = True
    r = _Relevant(*(getattr(r, f)[counted] for f in
                    ("time", "node", "peer", "conn_id", "up", "out", "reason")))
    a, b = np.minimum(r.node, r.peer), np.maximum(r.node, r.peer)
    delta = np.where(r.up, 1, -1)
    order = np.lexsort((np.arange(len(r)), b, a))  # per pair, in event order
    start = _starts(a[order], b[order])
    d = delta[order]
    from_a = np.where((r.node == a)[order], d, 0)
    both = (_segment_cumsum(from_a, start) > 0) & (_segment_cumsum(d - from_a, start) > 0)
    before = np.append(False, both[:-1]) & ~start
    # transitions alternate per pair, starting with an up
    changes = np.flatnonzero(both != before)
    rises = both[changes]
    pair_id = (np.cumsum(start) - 1)[changes]
    closes = np.append(~rises[1:] & (pair_id[1:] == pair_id[:-1]), False) & rises
    up_rows = order[changes[closes]]
    down_rows = order[changes[np.flatnonzero(closes) + 1]]
    by_down = np.argsort(down_rows, kind="stable")
    up_rows, down_rows = up_rows[by_down], down_rows[by_down]
    open_rows = np.sort(order[changes[rises & ~closes]])
    if not len(up_rows) and not len(open_rows):
        return pd.DataFrame([], columns=LINK_COLUMNS)
    rows = np.concatenate([up_rows, open_rows])
    up_at = r.time[rows]
    n_closed = len(up_rows)
    down_at = np.concatenate([r.time[down_rows], np.full(len(open_rows), np.nan)])
    duration = np.concatenate([r.time[down_rows] - up_at[:n_closed],
                               end_time - up_at[n_closed:]])
    df = pd.DataFrame({"a": a[rows], "b": b[rows], "up_at": up_at, "down_at": down_at,
                       "duration": duration, "open": np.arange(len(rows)) >= n_closed},
                      columns=LINK_COLUMNS)
    return df.sort_values(["up_at", "a", "b"], kind="stable").reset_index(drop=True)


def _replay_links(relevant: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """The exact event-by-event derivation, for tables that are not regular."""
    counts: dict[tuple[int, int], int] = defaultdict(int)  # (node, peer) -> open sessions
    conn_peer: dict[tuple[int, int], int] = {}
    up_since: dict[tuple[int, int], float] = {}
    rows: list[dict[str, object]] = []
    for t, node, peer, event, cid, _reason in _rows(relevant):
        pair = pair_of(node, peer)
        before = counts[(node, peer)] > 0 and counts[(peer, node)] > 0
        if event in _UP:
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


def live_mask(links: pd.DataFrame, t: float) -> np.ndarray:
    """Rows of ``links`` whose interval covers ``t`` (up_at <= t < down_at; an
    open link has down_at NaN), as a boolean array."""
    up = links["up_at"].to_numpy(dtype=float)
    down = links["down_at"].to_numpy(dtype=float)
    live: np.ndarray = (up <= t) & (np.isnan(down) | (down > t))
    return live


def links_up_at(links: pd.DataFrame, t: float) -> list[tuple[int, int]]:
    """Pairs whose link interval covers time ``t`` (up_at <= t < down_at), sorted
    and distinct."""
    live = live_mask(links, t)
    a = links["a"].to_numpy(dtype=np.int64)[live]
    b = links["b"].to_numpy(dtype=np.int64)[live]
    if not len(a):
        return []
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.ones(len(a), dtype=bool)
    keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
    return list(zip(a[keep].tolist(), b[keep].tolist(), strict=True))
