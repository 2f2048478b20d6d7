"""ConnectionPolicy: every decision the manager makes that reasonable nodes disagree on.

Two presets matter:

``jamixir``
    The reference Elixir client, reproduced with its weaknesses so scenarios can show
    what each one costs: only the preferred initiator ever dials; failed dials back
    off 2, 2, 4, 8, 16, 32, 32 s; a 300 s give-up whose clock restarts at every failed
    attempt (so it never fires); dials run serially inside the manager (10 s connect
    timeout each, the manager handles nothing else meanwhile); a lost outbound
    connection is redialled after a fixed 5 s, a lost inbound one is left to the
    peer; a duplicate inbound is refused (the older connection is kept); QUIC idle
    timeout disabled, so a silently dead peer is never noticed.

``jamnp-s``
    jamsim's recommendation: exponential backoff with full jitter (de-synchronises
    1023 nodes redialling after a partition heals), a fallback dial by the
    non-preferred side after a 5 s grace period (the text allows it), no permanent
    give-up for current-set validators, duplicates resolved by a rule both ends
    compute identically (the connection opened by the preferred initiator wins,
    then the newer), parallel dials whose number adapts to what the host's
    handshakes achieve (unlimited until a handshake stalls at the connect timeout),
    and an idle timeout with keep-alives so a dead peer is noticed in seconds.

Every field can be overridden: ``ConnectionPolicy.preset("jamixir", idle_timeout=10)``.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, fields, replace
from typing import Any

from jamsim.core.errors import UsageError

__all__ = ["PRESETS", "ConnectionPolicy", "DuplicateRule", "Jitter"]


class Jitter(enum.Enum):
    """How a backoff delay is randomised (AWS architecture blog terminology)."""

    NONE = "none"  # exactly the exponential delay
    FULL = "full"  # uniform in [floor, delay]
    EQUAL = "equal"  # delay/2 + uniform(0, delay/2)


class DuplicateRule(enum.Enum):
    """Which connection survives when a pair ends up with two."""

    KEEP_OLDER = "keep_older"  # Jamixir: refuse the newcomer
    KEEP_NEWER = "keep_newer"
    PREFERRED_INITIATOR = "preferred_initiator"  # opened by P(a, b) wins; then newer


@dataclass(frozen=True, slots=True)
class ConnectionPolicy:
    """All tunables of dialling, retrying, giving up and de-duplicating.

    Times are seconds. ``None`` disables the feature it names.
    """

    name: str = "custom"
    # --- who dials
    non_preferred_dials: bool = True
    """The non-preferred side dials after ``fallback_after`` if still unconnected."""
    fallback_after: float = 5.0
    redial_lost_inbound: bool = True
    """After losing an inbound connection, dial back (preferred side: at once with
    backoff; non-preferred: after ``fallback_after``). Jamixir waits forever."""
    serial_dials: bool = False
    """Dial one peer at a time and process nothing else meanwhile (Jamixir's
    synchronous ``connect`` inside the GenServer)."""
    max_parallel_dials: int | None = None
    """At most this many outbound dials in flight; further dials wait, first come
    first served, for one to end (events are handled meanwhile, unlike
    ``serial_dials``). ``None``: no limit. A node dialling a whole validator set
    at once on a busy host can push every handshake past ``connect_timeout``, and
    the retries then keep it there."""
    adaptive_dials: bool = False
    """Adapt how many dials are in flight to what the handshakes achieve
    (``jamsim/core/dial_control.py``): no limit until the host shows overload (a
    dial times out after the peer answered, or is answered far too slowly, or
    the node's own socket drops datagrams: ``ReceiveDrops``), then additive
    increase / multiplicative decrease between ``adaptive_dials_min`` and
    ``adaptive_dials_max``, open again once back at the maximum or once
    connected to every validator. Dials that time out unanswered (partition,
    dead peer) never shrink it. Combines with
    ``max_parallel_dials`` (the smaller limit applies), not with ``serial_dials``."""
    adaptive_dials_min: int = 1
    adaptive_dials_max: int = 32
    # --- backoff
    initial_retry: float = 1.0
    retry_multiplier: float = 2.0
    max_retry: float = 32.0
    min_retry: float = 0.1
    """Floor of any retry delay, jitter included."""
    initial_retry_repeats: int = 1
    """How many failed attempts use ``initial_retry`` before it starts growing
    (Jamixir's observed 2, 2, 4, ... sequence is 2)."""
    jitter: Jitter = Jitter.FULL
    reconnect_after_loss: float | None = None
    """Fixed delay before redialling a lost outbound connection; ``None`` means
    use the backoff schedule from attempt 1."""
    # --- give-up
    give_up_after: float | None = None
    give_up_clock_resets: bool = False
    """Restart the give-up clock at every failed attempt (Jamixir's bug: it then
    never fires)."""
    give_up_spares_current_set: bool = True
    """Never give up on a validator of the current epoch."""
    # --- duplicates, slots
    duplicate_rule: DuplicateRule = DuplicateRule.PREFERRED_INITIATOR
    non_validator_slots: int = 20
    validators_only: bool = False
    # --- transport (read by drivers)
    connect_timeout: float = 5.0
    idle_timeout: float | None = 15.0
    keep_alive_interval: float | None = 5.0
    disconnect_timeout: float | None = 15.0
    """QUIC loss detection: how long an end keeps sending unacknowledged data
    before it declares the path dead and closes the connection. Only traffic
    exercises it (a simulation with slot traffic); ``None``: never. jamnp-s uses
    its idle timeout; jamixir the msquic default it runs on."""

    def __post_init__(self) -> None:
        problems = []
        if self.initial_retry <= 0:
            problems.append("initial_retry must be > 0")
        if self.min_retry < 0 or self.min_retry > self.initial_retry:
            problems.append("min_retry must be in [0, initial_retry]")
        if self.max_retry < self.initial_retry:
            problems.append("max_retry must be >= initial_retry")
        if self.retry_multiplier < 1:
            problems.append("retry_multiplier must be >= 1")
        if self.initial_retry_repeats < 1:
            problems.append("initial_retry_repeats must be >= 1")
        if self.fallback_after < 0:
            problems.append("fallback_after must be >= 0")
        if self.connect_timeout <= 0:
            problems.append("connect_timeout must be > 0")
        if self.non_validator_slots < 0:
            problems.append("non_validator_slots must be >= 0")
        if self.max_parallel_dials is not None:
            if self.max_parallel_dials < 1:
                problems.append("max_parallel_dials must be >= 1 or None")
            if self.serial_dials:
                problems.append("max_parallel_dials does not combine with serial_dials "
                                "(which already dials one peer at a time)")
        if self.adaptive_dials_min < 1 or self.adaptive_dials_max < self.adaptive_dials_min:
            problems.append("adaptive_dials_min must be >= 1 and <= adaptive_dials_max")
        if self.adaptive_dials and self.serial_dials:
            problems.append("adaptive_dials does not combine with serial_dials "
                            "(which already dials one peer at a time)")
        for name in ("reconnect_after_loss", "give_up_after", "idle_timeout",
                     "keep_alive_interval", "disconnect_timeout"):
            value = getattr(self, name)
            if value is not None and value < 0:
                problems.append(f"{name} must be >= 0 or None")
        if problems:
            raise UsageError(f"invalid ConnectionPolicy {self.name!r}: " + "; ".join(problems))

    # ------------------------------------------------------------------ presets

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> ConnectionPolicy:
        """A named preset with any field overridden; unknown names/fields fail."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise UsageError(
                f"unknown policy preset {name!r}; choose one of {sorted(PRESETS)}"
            ) from None
        return base.with_overrides(**overrides)

    def with_overrides(self, **overrides: Any) -> ConnectionPolicy:
        known = {f.name: f for f in fields(self)}
        unknown = sorted(set(overrides) - set(known))
        if unknown:
            raise UsageError(f"unknown policy field(s) {unknown}; known: {sorted(known)}")
        coerced: dict[str, Any] = {}
        for key, value in overrides.items():
            if key == "jitter" and isinstance(value, str):
                value = Jitter(value)
            elif key == "duplicate_rule" and isinstance(value, str):
                value = DuplicateRule(value)
            elif key in _WHOLE_NUMBER_FIELDS and isinstance(value, float):
                # Command lines parse numbers as floats; a count must be whole (and
                # the compiled build checks that an int field holds an int).
                if not value.is_integer():
                    raise UsageError(f"policy field {key} must be a whole number, got {value}")
                value = int(value)
            coerced[key] = value
        return replace(self, **coerced)

    # ------------------------------------------------------------------ backoff

    def backoff_ceiling(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (1-based), capped."""
        if attempt < 1:
            raise UsageError(f"attempt numbers start at 1, got {attempt}")
        exponent = max(0, attempt - self.initial_retry_repeats)
        # Cap the exponent before exponentiating: attempt may be in the thousands.
        if self.retry_multiplier > 1:
            limit = 0
            delay = self.initial_retry
            while limit < exponent and delay < self.max_retry:
                delay *= self.retry_multiplier
                limit += 1
        else:
            delay = self.initial_retry
        return min(delay, self.max_retry)

    def backoff_schedule(self) -> tuple[float, ...]:
        """``backoff_ceiling(n)`` for n = 1, 2, ... until it stops changing (the cap,
        or a multiplier of 1), at most 100,000 entries. Managers cache it: a
        partition makes millions of retries and the ceiling loop was a fifth of
        their cost."""
        # Incremental, with the same multiplications as backoff_ceiling (equal floats).
        schedule: list[float] = []
        grown, multiplied = self.initial_retry, 0
        growing = self.retry_multiplier > 1
        while len(schedule) < 100_000:
            exponent = max(0, len(schedule) + 1 - self.initial_retry_repeats)
            while growing and multiplied < exponent and grown < self.max_retry:
                grown *= self.retry_multiplier
                multiplied += 1
            schedule.append(min(grown, self.max_retry))
            if schedule[-1] >= self.max_retry or \
                    (not growing and len(schedule) >= self.initial_retry_repeats):
                break
        return tuple(schedule)

    def retry_delay(self, attempt: int, rng: random.Random) -> float:
        """Delay before retry ``attempt``; always within [min_retry, max_retry]."""
        return self.jittered(self.backoff_ceiling(attempt), rng)

    def jittered(self, ceiling: float, rng: random.Random) -> float:
        """A delay drawn per ``jitter`` below ``ceiling``, clamped to the policy's bounds."""
        # random.uniform(a, b) is documented as a + (b - a) * random(); spelled out
        # here it gives the same floats without a Python call per draw (catching up
        # a partition draws millions of them).
        if self.jitter is Jitter.FULL:
            low = self.min_retry
            delay = low + (ceiling - low) * rng.random()
        elif self.jitter is Jitter.EQUAL:
            half = ceiling / 2
            delay = half + half * rng.random()
        else:
            delay = ceiling
        return min(self.max_retry, max(self.min_retry, delay))


_WHOLE_NUMBER_FIELDS = frozenset({"initial_retry_repeats", "non_validator_slots",
                                  "max_parallel_dials", "adaptive_dials_min",
                                  "adaptive_dials_max"})
"""The ``int`` fields (listed, not derived: the compiled build keeps no annotation
strings; a test checks the list against the pure-Python annotations)."""


PRESETS: dict[str, ConnectionPolicy] = {
    "jamixir": ConnectionPolicy(
        name="jamixir",
        non_preferred_dials=False,
        redial_lost_inbound=False,
        serial_dials=True,
        initial_retry=2.0,
        retry_multiplier=2.0,
        max_retry=32.0,
        min_retry=2.0,
        initial_retry_repeats=2,
        jitter=Jitter.NONE,
        reconnect_after_loss=5.0,
        give_up_after=300.0,
        give_up_clock_resets=True,
        give_up_spares_current_set=False,
        duplicate_rule=DuplicateRule.KEEP_OLDER,
        connect_timeout=10.0,
        idle_timeout=None,
        keep_alive_interval=None,
        # The reference client runs on msquic, whose DisconnectTimeoutMs defaults
        # to 16,000 ms: "How long to wait for an ACK before declaring a path dead
        # and disconnecting" (microsoft/msquic, docs/Settings.md).
        disconnect_timeout=16.0,
    ),
    "jamnp-s": ConnectionPolicy(name="jamnp-s", give_up_after=900.0, adaptive_dials=True),
}
