"""InstantQueue must hand out instants exactly as a heap would."""

from __future__ import annotations

import heapq

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jamsim.sim.calendar import InstantQueue

times = st.floats(0.0, 50.0, allow_nan=False, allow_infinity=False)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("push"), times),
        # pushes just after the last instant served land in the slot being served
        st.tuples(st.just("push_near"), st.floats(0.0, 0.003)),
        st.tuples(st.just("pop_due"), times),
        st.tuples(st.just("peek"), st.just(0.0)),
    ),
    max_size=300,
)


@settings(max_examples=300)
@given(operations, st.sampled_from([0.001, 0.01, 1.0, 7.5]))
def test_same_order_as_a_heap(ops: list[tuple[str, float]], width: float) -> None:
    queue, reference = InstantQueue(width), []
    last = 0.0
    for op, value in ops:
        if op in ("push", "push_near"):
            when = last + value if op == "push_near" else value
            queue.push(when)
            heapq.heappush(reference, when)
        elif op == "pop_due":
            expected = heapq.heappop(reference) if reference and reference[0] <= value else None
            got = queue.pop_due(value)
            assert got == expected
            if got is not None:
                last = got
        else:
            assert queue.peek() == (reference[0] if reference else None)
        assert len(queue) == len(reference)
        assert bool(queue) == bool(reference)
    drained = []
    while (when := queue.pop_due(float("inf"))) is not None:
        drained.append(when)
    assert drained == sorted(reference)


def test_instants_pushed_while_a_slot_is_served_come_out_in_order() -> None:
    queue = InstantQueue(1.0)
    for when in (0.5, 0.2, 0.9, 3.0):
        queue.push(when)
    assert queue.pop_due(10.0) == 0.2
    queue.push(0.3)  # same slot as the one being served, before its rest
    queue.push(0.2)  # the instant just served, again
    queue.push(2.5)  # a later slot
    assert [queue.pop_due(10.0) for _ in range(6)] == [0.2, 0.3, 0.5, 0.9, 2.5, 3.0]
    assert queue.pop_due(10.0) is None and queue.peek() is None


def test_rejects_a_slot_width_that_is_not_positive() -> None:
    with pytest.raises(ValueError, match="slot_width"):
        InstantQueue(0.0)
