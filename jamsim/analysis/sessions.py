"""Derive connection sessions and pair links from the event table.

A *session* is one node's view of one connection: it opens at ``connected_out`` /
``connected_in`` and closes at the matching ``disconnected`` (same node, same
conn_id; or same peer when conn_id is unknown). A *link* is a pair-level interval
during which BOTH ends hold an open session to each other, which is the same
definition ConnectivitySample.links_believed uses, so the two views can be
checked against each other.

A crashed process reports nothing, so the runtime writes lifecycle rows
(``node_crashed``, ``node_restarted``: jamsim.core.types.NodeLifecycle) and both
derivations close every session the node held at that row, reason ``node
crashed``; connection ids are made unique per process first (a restarted node
counts from 1 again). Pauses are not applied: a paused node's sessions stay open,
as its process will find them on resume.

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

__all__ = ["LINK_COLUMNS", "PROCESS_ENDS", "SESSION_COLUMNS", "SESSION_EVENTS", "derive_links",
           "derive_sessions", "links_up_at", "live_mask", "pair_of"]

SESSION_COLUMNS = ["a", "b", "node", "peer", "direction", "conn_id", "up_at", "down_at",
                   "duration", "reason", "open"]
LINK_COLUMNS = ["a", "b", "up_at", "down_at", "duration", "open"]

_UP = {"connected_out": "out", "connected_in": "in"}


def pair_of(i: int, j: int) -> tuple[int, int]:
    """Unordered pair key (min, max)."""
    return (i, j) if i < j else (j, i)


@dataclass(frozen=True)
class _Relevant:
    """Connect/disconnect events with a known peer, and the node lifecycle rows
    that end a process (``end``), in table order, as arrays."""

    time: np.ndarray
    node: np.ndarray
    peer: np.ndarray
    conn_id: np.ndarray
    up: np.ndarray  # connected_out / connected_in (else disconnected)
    out: np.ndarray  # connected_out
    reason: np.ndarray  # object array, as stored
    end: np.ndarray  # node_crashed / node_restarted

    def __len__(self) -> int:
        return len(self.time)

    def take(self, index: np.ndarray) -> _Relevant:
        return _Relevant(*(getattr(self, f)[index] for f in _RELEVANT_FIELDS))


_RELEVANT_FIELDS = ("time", "node", "peer", "conn_id", "up", "out", "reason", "end")
_PROCESS_ENDS = ["node_crashed", "node_restarted"]
"""Lifecycle rows (jamsim.core.types.NodeLifecycle) after which a node holds no
connection: its process is gone and will report no ``disconnected``."""
_GEN_SHIFT = 40
"""The array paths move a later process's connection ids up by ``generation <<
40``: a restarted node counts from 1 again, and its sessions are new ones."""
CRASH_REASON = "node crashed"
PROCESS_ENDS: tuple[str, ...] = tuple(_PROCESS_ENDS)
SESSION_EVENTS: tuple[str, ...] = (*_UP, "disconnected", *_PROCESS_ENDS)
"""The only events sessions and links are derived from: a loader reads just these."""


def _relevant(events: pd.DataFrame) -> tuple[pd.DataFrame, _Relevant]:
    name_col = events["event"]
    ends = name_col.isin(_PROCESS_ENDS)
    mask = (name_col.isin([*_UP, "disconnected"]) & (events["peer"] >= 0)) | ends
    rel = events.loc[mask, ["time", "node", "peer", "event", "conn_id", "reason"]]
    name = rel["event"].to_numpy(dtype=object)
    out = name == "connected_out"
    return rel, _Relevant(
        time=rel["time"].to_numpy(dtype=float), node=rel["node"].to_numpy(dtype=np.int64),
        peer=rel["peer"].to_numpy(dtype=np.int64),
        conn_id=rel["conn_id"].to_numpy(dtype=np.int64), up=out | (name == "connected_in"),
        out=out, reason=rel["reason"].to_numpy(dtype=object),
        end=ends[mask].to_numpy(dtype=bool))


def _distinct_pairs(a: np.ndarray, b: np.ndarray) -> int:
    """How many distinct ``(a, b)`` pairs: sorted by both, counted where either
    changes (``np.unique(..., axis=1)`` sorts the pairs as opaque records, six
    times slower on the connection ids of a full-scale run)."""
    order = np.lexsort((b, a))
    return int(np.count_nonzero(_starts(a[order], b[order])))


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


@dataclass(frozen=True)
class _Processes:
    """The connection events of a table with lifecycle rows, ids made unique per
    process (``_GEN_SHIFT``), and when each node's processes ended."""

    events: _Relevant  # without the lifecycle rows
    end_node: np.ndarray  # lifecycle rows sorted by node, then table order
    end_time: np.ndarray
    end_row: np.ndarray  # their positions in the relevant rows


def _processes(r: _Relevant) -> _Processes:
    pos = np.arange(len(r))
    end_pos, end_node = pos[r.end], r.node[r.end]
    span = len(r) + 1
    end_keys = np.sort(end_node * span + end_pos)
    keep = ~r.end
    node = r.node[keep]
    generation = np.searchsorted(end_keys, node * span + pos[keep]) - \
        np.searchsorted(end_keys, node * span)
    events = r.take(keep)
    cid = events.conn_id
    events = _Relevant(events.time, events.node, events.peer,
                       np.where(cid >= 0, cid + (generation << _GEN_SHIFT), cid),
                       events.up, events.out, events.reason, events.end)
    order = np.lexsort((end_pos, end_node))
    return _Processes(events, end_node[order], r.time[r.end][order], end_pos[order])


def _process_end(p: _Processes, node: np.ndarray, conn_id: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """For sessions (node, remapped id): whether their process ended, and at which
    lifecycle row (an index into ``p.end_*``)."""
    which = np.searchsorted(p.end_node, node) + (conn_id >> _GEN_SHIFT)
    valid = which < len(p.end_node)
    which = np.where(valid, which, 0)
    valid &= p.end_node[which] == node if len(p.end_node) else valid
    return valid, which


def _own_ids(conn_id: np.ndarray) -> np.ndarray:
    result: np.ndarray = np.where(conn_id >= 0, conn_id & ((1 << _GEN_SHIFT) - 1), conn_id)
    return result


def derive_sessions(events: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """Per-node sessions; sessions still open at the end get ``down_at=NaN``
    and a duration measured to ``end_time`` (``open=True``). A node's crash or
    restart (lifecycle rows) ends every session it held, reason ``node crashed``."""
    rel, r = _relevant(events)
    if r.end.any():
        return _sessions_of_processes(rel, r, end_time)
    conns = _by_connection(r) if len(r) else None
    # a disconnect that closes nothing under its id made the replay search by peer
    if conns is None or not (r.up[conns.order] | conns.closes).all():
        return _replay_sessions(rel, end_time)
    return _vector_sessions(r, conns, end_time)


def _sessions_of_processes(rel: pd.DataFrame, r: _Relevant, end_time: float) -> pd.DataFrame:
    """Sessions of a table with crashes: the array path on per-process ids, then
    every session still open when its process ended is closed there. Exact when
    the table is regular (a disconnect after a crash then has nobody to close);
    anything else takes the replay, which closes them as it meets the row."""
    p = _processes(r)
    e = p.events
    conns = _by_connection(e) if len(e) else None
    if conns is None or not (e.up[conns.order] | conns.closes).all():
        return _replay_sessions(rel, end_time)
    df = _vector_sessions(e, conns, end_time)
    if not len(df):
        return df
    cid = df["conn_id"].to_numpy(dtype=np.int64)
    valid, which = _process_end(p, df["node"].to_numpy(dtype=np.int64), cid)
    cut = p.end_time[which]
    down = df["down_at"].to_numpy(dtype=float)
    held = valid & (np.isnan(down) | (down > cut))
    if held.any():
        up = df["up_at"].to_numpy(dtype=float)
        df["down_at"] = np.where(held, cut, down)
        df["duration"] = np.where(held, cut - up, df["duration"].to_numpy(dtype=float))
        reason = df["reason"].to_numpy(dtype=object)
        df["reason"] = _str_array(np.where(held, CRASH_REASON, reason).tolist())
        df["open"] = df["open"].to_numpy(dtype=bool) & ~held
    df["conn_id"] = _own_ids(cid)
    return df


def _vector_sessions(r: _Relevant, conns: _Connections, end_time: float) -> pd.DataFrame:
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
    ``by_peer`` find it without scanning every open session. A lifecycle row
    closes every session of its node, oldest first.
    """
    open_: dict[tuple[int, int], dict[str, object]] = {}
    position: dict[tuple[int, int], int] = {}  # the key's place in open_'s order
    inserted = itertools.count()
    by_peer: dict[tuple[int, int], set[tuple[int, int]]] = defaultdict(set)
    by_node: dict[int, set[tuple[int, int]]] = defaultdict(set)
    rows: list[dict[str, object]] = []

    def close(found: tuple[int, int], time: float, reason: str) -> None:
        s = open_.pop(found)
        del position[found]
        by_peer[(found[0], int(s["peer"]))].discard(found)  # type: ignore[call-overload]
        by_node[found[0]].discard(found)
        up = float(s["up_at"])  # type: ignore[arg-type]
        rows.append({**s, "down_at": time, "duration": time - up,
                     "reason": reason, "open": False})

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
            by_node[node].add(key)
            open_[key] = {"a": a, "b": b, "node": node, "peer": peer,
                          "direction": _UP[event], "conn_id": cid, "up_at": time}
            continue
        if event != "disconnected":  # the node's process ended
            for held in sorted(by_node.get(node, ()), key=position.__getitem__):
                close(held, time, CRASH_REASON)
            continue
        found: tuple[int, int] | None = (node, cid) if cid >= 0 and (node, cid) in open_ \
            else None
        if found is None:  # unknown conn id: close this node's oldest session to peer
            cands = by_peer.get((node, peer))
            found = min(cands, key=position.__getitem__) if cands else None
        if found is None:
            continue
        close(found, time, str(reason))
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
    """Pair-level up intervals: a pair is up while both ends hold a session (a
    node's crash or restart ends its sessions, as in :func:`derive_sessions`)."""
    rel, r = _relevant(events)
    if r.end.any():
        prepared = _closed_at_process_ends(r)
        if prepared is None:
            return _replay_links(rel, end_time)
        r = prepared
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
    r = r.take(counted)
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


def _closed_at_process_ends(r: _Relevant) -> _Relevant | None:
    """The connection events of a table with crashes, per-process ids, and a
    disconnect for every session still open at its process's end placed right
    after that lifecycle row; ``None`` unless that is exactly what the replay
    does (regular sessions, no id re-used within one process)."""
    p = _processes(r)
    e = p.events
    conns = _by_connection(e) if len(e) else None
    if conns is None or not (e.up[conns.order] | conns.closes).all():
        return None
    if _distinct_pairs(e.node[e.up], e.conn_id[e.up]) != e.up.sum():
        return None  # a re-used open id: the replay's counts keep both
    order = conns.order
    ends_group = np.append(conns.start[1:], True)
    still_open = order[ends_group & e.up[order]]  # a group's last row, a connect
    valid, which = _process_end(p, e.node[still_open], e.conn_id[still_open])
    opened = still_open[valid]
    which = which[valid]
    syn = _Relevant(time=p.end_time[which], node=e.node[opened], peer=e.peer[opened],
                    conn_id=e.conn_id[opened], up=np.zeros(len(opened), dtype=bool),
                    out=np.zeros(len(opened), dtype=bool),
                    reason=np.full(len(opened), CRASH_REASON, dtype=object),
                    end=np.zeros(len(opened), dtype=bool))
    kept_pos = np.flatnonzero(~r.end)
    place = np.concatenate([2 * kept_pos, 2 * p.end_row[which] + 1])
    merged = _Relevant(*(np.concatenate([getattr(e, f), getattr(syn, f)])
                         for f in _RELEVANT_FIELDS))
    return merged.take(np.argsort(place, kind="stable"))


def _replay_links(relevant: pd.DataFrame, end_time: float) -> pd.DataFrame:
    """The exact event-by-event derivation, for tables that are not regular."""
    counts: dict[tuple[int, int], int] = defaultdict(int)  # (node, peer) -> open sessions
    conn_peer: dict[tuple[int, int], int] = {}
    up_since: dict[tuple[int, int], float] = {}
    rows: list[dict[str, object]] = []
    for t, node, peer, event, cid, _reason in _rows(relevant):
        if event != "disconnected" and event not in _UP:  # the node's process ended
            for key in [k for k in conn_peer if k[0] == node]:
                del conn_peer[key]
            for held in [k for k, c in counts.items() if k[0] == node and c > 0]:
                counts[held] = 0
                pair = pair_of(*held)
                if pair in up_since:
                    start = up_since.pop(pair)
                    rows.append({"a": pair[0], "b": pair[1], "up_at": start, "down_at": t,
                                 "duration": t - start, "open": False})
            continue
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
