"""The scenario file format, as pydantic models.

Every field has a default, so ``name: x`` alone is a valid scenario. Unknown keys
are errors (``extra="forbid"``): a typo must not silently run a different
experiment. Units are parsed by :mod:`jamsim.scenario.units`, whose patterns also
type the unit fields in the JSON Schema (``jamsim schema``), so editors accept
``60s`` and ``1%`` exactly where the loader does. Cross-references (groups naming
regions, ``v3`` or ``0..38``) are resolved later by :mod:`jamsim.scenario.resolve`,
which knows the validator count.

A check that belongs to one field but can only run once the whole model is known
(a timeline entry after the end, a policy invariant) raises :func:`located`, an
error that carries the field's path, so the loader still reports its line.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import fields as dataclass_fields
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from jamsim.core.errors import UsageError
from jamsim.core.policy import PRESETS, ConnectionPolicy, DuplicateRule, Jitter
from jamsim.scenario.units import (
    BANDWIDTH_SCHEMA,
    DURATION_RANGE_SCHEMA,
    DURATION_SCHEMA,
    FRACTION_SCHEMA,
    POSITIVE_DURATION_SCHEMA,
    parse_bandwidth,
    parse_duration,
    parse_fraction,
)
from jamsim.traffic.config import HEADER_BYTES

__all__ = ["JSON_SCHEMA_DRAFT", "LOCATED", "Scenario", "json_schema", "located"]

Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(DURATION_SCHEMA)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration),
                             WithJsonSchema(POSITIVE_DURATION_SCHEMA)]
Fraction = Annotated[float, BeforeValidator(parse_fraction), WithJsonSchema(FRACTION_SCHEMA)]
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth), WithJsonSchema(BANDWIDTH_SCHEMA)]
GroupRef = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v),
                     WithJsonSchema({"anyOf": [{"type": "string"},
                                               {"type": "integer", "minimum": 0}],
                                     "description": "a region, v3, an index, '0..38' or all"})]
DurationRange = Annotated[str, WithJsonSchema(DURATION_RANGE_SCHEMA)]

LOCATED = "located"
"""pydantic error type of :func:`located` errors; their ``ctx["path"]`` is the field."""


def located(message: str, *path: str | int,
            more: Sequence[tuple[tuple[str | int, ...], str]] = ()) -> PydanticCustomError:
    """An error about the field at ``path`` (relative to the model raising it);
    ``more`` adds further ``(path, message)`` problems found by the same check."""
    return PydanticCustomError(LOCATED, "{message}",
                               {"message": message, "path": path, "more": tuple(more)})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Validators(_Model):
    """How many validators, and which fraction lives in which region."""

    count: int = Field(6, ge=2, le=1023, description="validators in the set (2..1023)")
    regions: dict[str, Fraction] = Field(
        default_factory=dict, description="region name -> share, e.g. {eu: 40%, us: 60%}")

    @field_validator("regions")
    @classmethod
    def _shares_add_up(cls, regions: dict[str, float]) -> dict[str, float]:
        if regions and abs(sum(regions.values()) - 1.0) > 1e-6:
            raise ValueError(
                f"region shares must add up to 100%, they add up to "
                f"{sum(regions.values()) * 100:.1f}%")
        return regions


class LatencyDistribution(_Model):
    median: Duration = Field(0.04, description="median one-way latency: half the packets "
                                               "take less, whatever the distribution")
    jitter: Duration = Field(0.0, description="spread: the standard deviation")
    distribution: Literal["constant", "normal", "lognormal"] = "normal"


LatencyEntry = Duration | LatencyDistribution


class GilbertElliott(_Model):
    """Bursty loss: p = P(good->bad) per packet, r = P(bad->good), bad_loss in bad."""

    model: Literal["gilbert-elliott"]
    p: Fraction
    r: Fraction
    bad_loss: Fraction = 1.0


def _default_latency() -> dict[str, LatencyEntry]:
    return {"default": 0.04}


class Network(_Model):
    latency: dict[str, LatencyEntry] = Field(
        default_factory=_default_latency,
        description="'default' and region pairs 'eu-us' (symmetric unless 'us-eu' is "
                    "given too) -> one-way latency")
    loss: Fraction | GilbertElliott = Field(0.0, description="packet loss")
    bandwidth: Bandwidth | None = Field(None, description="per-pair link rate, e.g. 100Mbit")

    @field_validator("latency")
    @classmethod
    def _pair_keys(cls, latency: dict[str, Any]) -> dict[str, Any]:
        for key in latency:
            if key != "default" and (key.count("-") != 1 or "" in key.split("-")):
                raise ValueError(
                    f"latency key {key!r} must be 'default' or a region pair like 'eu-us'")
        return latency


_POLICY_FIELDS = {f.name for f in dataclass_fields(ConnectionPolicy)} - {"name"}
_POLICY_DURATIONS = {"fallback_after", "initial_retry", "max_retry", "min_retry",
                     "reconnect_after_loss", "give_up_after", "connect_timeout",
                     "idle_timeout", "keep_alive_interval", "disconnect_timeout"}
_NULLABLE = ("reconnect_after_loss", "give_up_after", "idle_timeout", "keep_alive_interval",
             "disconnect_timeout")
"""Policy fields where ``null`` means "disabled"; every other field needs a value."""
_UNSET = "the preset's value"


def _policy_json_schema(schema: dict[str, Any]) -> None:
    """Unset policy fields mean "the preset's value", not ``null``: drop the
    ``default: null`` pydantic writes, and the null branch where null is an error."""
    for name, prop in schema.get("properties", {}).items():
        if name == "preset":
            continue
        prop.pop("default", None)
        prop["description"] = f"{prop.get('description', '')} (default: {_UNSET})".lstrip()
        if name not in _NULLABLE and "anyOf" in prop:
            branches = [b for b in prop.pop("anyOf") if b != {"type": "null"}]
            if len(branches) == 1:
                unit_help = branches[0].pop("description", None)
                prop.update(branches[0])
                if unit_help:
                    prop["description"] += f"; {unit_help}"
            else:
                prop["anyOf"] = branches


class Policy(_Model):
    """A preset plus any ConnectionPolicy field overridden (durations in units).

    A field left out keeps the preset's value; ``None`` here means "not given",
    except for the fields in ``_NULLABLE``, where a given ``null`` disables the
    feature (``idle_timeout: null``). Read the overrides with :meth:`overrides`,
    never the attributes directly. Construction builds the ConnectionPolicy, so
    its invariants (``min_retry <= initial_retry <= max_retry``, ...) fail at load
    time with the field's line, not when the run starts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True,
                              json_schema_extra=_policy_json_schema)

    preset: Literal["jamnp-s", "jamixir"] = Field(
        "jamnp-s", description="starting point; every other field overrides it")
    non_preferred_dials: bool | None = Field(
        None, description="the non-preferred side dials after fallback_after if unconnected")
    fallback_after: Duration | None = Field(
        None, description="grace period before the non-preferred side dials")
    redial_lost_inbound: bool | None = Field(
        None, description="dial back after losing an inbound connection")
    serial_dials: bool | None = Field(
        None, description="dial one peer at a time, handling nothing else meanwhile")
    max_parallel_dials: int | None = Field(
        None, description="at most this many dials in flight per node; more wait their "
                          "turn (>= 1; unset: no limit)")
    adaptive_dials: bool | None = Field(
        None, description="adapt the dials in flight to what handshakes achieve: no limit "
                          "until the host shows overload (stalled or slowly answered dials, the "
                          "node's own receive-buffer drops), then AIMD within "
                          "adaptive_dials_min..max")
    adaptive_dials_min: int | None = Field(
        None, description="lowest adaptive dial limit (>= 1)")
    adaptive_dials_max: int | None = Field(
        None, description="highest adaptive dial limit; reached with no dial waiting, or "
                          "connected to every validator, the limit opens "
                          "(>= adaptive_dials_min)")
    initial_retry: Duration | None = Field(None, description="first retry delay (> 0)")
    retry_multiplier: float | None = Field(None, description="backoff growth factor (>= 1)")
    max_retry: Duration | None = Field(None, description="cap of a retry delay "
                                                         "(>= initial_retry)")
    min_retry: Duration | None = Field(None, description="floor of a retry delay, jitter "
                                                         "included (<= initial_retry)")
    initial_retry_repeats: int | None = Field(
        None, description="failed attempts that use initial_retry before it grows (>= 1)")
    jitter: Jitter | None = Field(None, description="backoff randomisation")
    reconnect_after_loss: Duration | None = Field(
        None, description="fixed delay before redialling a lost outbound connection; "
                          "null: use the backoff schedule")
    give_up_after: Duration | None = Field(
        None, description="stop dialling a peer after this long; null: never")
    give_up_clock_resets: bool | None = Field(
        None, description="restart the give-up clock at every failed attempt")
    give_up_spares_current_set: bool | None = Field(
        None, description="never give up on a validator of the current epoch")
    duplicate_rule: DuplicateRule | None = Field(
        None, description="which connection survives when a pair has two")
    non_validator_slots: int | None = Field(None, description="connections kept for "
                                                              "non-validators (>= 0)")
    validators_only: bool | None = Field(None, description="refuse non-validators")
    connect_timeout: Duration | None = Field(None, description="dial timeout (> 0)")
    idle_timeout: Duration | None = Field(
        None, description="QUIC idle timeout; null: disabled (a dead peer goes unnoticed)")
    keep_alive_interval: Duration | None = Field(
        None, description="keep-alive PING period; null: no keep-alives")
    disconnect_timeout: Duration | None = Field(
        None, description="QUIC loss detection under traffic: close after sending this "
                          "long without an ACK; null: never")

    @model_validator(mode="after")
    def _valid_policy(self) -> Policy:
        problems: list[tuple[tuple[str | int, ...], str]] = [
            ((name,), f"{name} cannot be null; only {', '.join(_NULLABLE)} can be disabled "
                      f"with null. Leave {name} out to keep the preset's value")
            for name in type(self).model_fields
            if name in self.model_fields_set and getattr(self, name) is None
            and name not in _NULLABLE]
        if not problems:
            try:
                self.build()
            except UsageError as exc:
                problems = self._explain(str(exc))
        if problems:
            (path, message), *more = problems
            raise located(message, *path, more=more)
        return self

    def _explain(self, usage_error: str) -> list[tuple[tuple[str | int, ...], str]]:
        """Each ConnectionPolicy complaint with the field it belongs to.

        ``UsageError`` reads ``invalid ConnectionPolicy 'x': a must be ...; b ...``.
        A complaint belongs to the first field it names that the scenario set (the
        presets themselves are consistent). When it names a value the file does not
        show (the preset's) or several values, they are spelled out.
        """
        built = ConnectionPolicy.preset(self.preset)
        overrides = self.overrides()
        explained: list[tuple[tuple[str | int, ...], str]] = []
        for problem in (usage_error.partition(": ")[2] or usage_error).split("; "):
            named = [w for w in dict.fromkeys(re.findall(r"[a-z_]+", problem))
                     if w in _POLICY_FIELDS]
            mine = [name for name in named if name in overrides]
            if named != mine[:1]:
                problem += ": here " + ", ".join(
                    _show(name, overrides[name]) if name in overrides else
                    f"{_show(name, getattr(built, name))} (from preset {self.preset}; "
                    "can be set too)" for name in named)
            explained.append(((mine[0],) if mine else ("preset",), problem))
        return explained

    @model_serializer(mode="plain")
    def _dump(self) -> dict[str, Any]:
        """Preset plus exactly the fields given: a dumped and reloaded scenario keeps
        ``idle_timeout: null`` (disabled) apart from "not given" (preset's value)."""
        return {"preset": self.preset, **self.overrides()}

    def overrides(self) -> dict[str, Any]:
        """Given fields as plain values: seconds, bools, ints, enum values, None."""
        values: dict[str, Any] = {}
        for name in type(self).model_fields:
            if name != "preset" and name in self.model_fields_set:
                value = getattr(self, name)
                values[name] = value.value if isinstance(value, enum.Enum) else value
        return values

    def build(self) -> ConnectionPolicy:
        return ConnectionPolicy.preset(self.preset, **self.overrides())


def _show(name: str, value: Any) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if name in _POLICY_DURATIONS and isinstance(value, float):
        return f"{name} = {value:g}s"
    return f"{name} = {value}"


class Churn(_Model):
    """From this entry's ``at`` until ``until``: each validator in ``fraction`` of
    the set crashes once at a random time and restarts after ``downtime``."""

    fraction: Fraction
    downtime: DurationRange = Field("30s..2m", description="range 'min..max' of durations")
    until: Duration | None = None

    @field_validator("downtime")
    @classmethod
    def _range(cls, value: str) -> str:
        low, sep, high = value.partition("..")
        if not sep:
            parse_duration(value)
            return value
        if parse_duration(low) > parse_duration(high):
            raise ValueError(f"downtime range {value!r} has min > max")
        return value

    def downtime_range(self) -> tuple[float, float]:
        low, sep, high = self.downtime.partition("..")
        return (parse_duration(low), parse_duration(high if sep else low))


class EpochChange(_Model):
    rotate: Fraction = Field(description="fraction of validators replaced by new keys")


class LinkChange(_Model):
    between: tuple[str, str] = Field(description="two region names")
    latency: LatencyEntry | None = None
    loss: Fraction | None = None


class TimelineEntry(_Model):
    """One thing that happens at ``at``; exactly one action per entry."""

    at: Duration
    partition: list[list[GroupRef]] | None = None
    one_way: bool = Field(False, description="with partition: only the first group's "
                                             "packets towards the others are dropped")
    isolate: list[GroupRef] | None = None
    heal: Literal["all"] | None = None
    kill: list[GroupRef] | None = None
    pause: list[GroupRef] | None = None
    resume: list[GroupRef] | None = None
    restart: list[GroupRef] | None = None
    churn: Churn | None = None
    epoch: EpochChange | None = None
    link: LinkChange | None = None

    @model_validator(mode="after")
    def _exactly_one_action(self) -> TimelineEntry:
        chosen = [name for name in ACTIONS if getattr(self, name) is not None]
        if len(chosen) != 1:
            raise ValueError(
                f"a timeline entry needs exactly one of {', '.join(ACTIONS)}; "
                f"got {chosen or 'none'}")
        if self.one_way and self.partition is None:
            raise ValueError("one_way only applies to partition")
        return self

    @property
    def action(self) -> str:
        return next(name for name in ACTIONS if getattr(self, name) is not None)


ACTIONS = ("partition", "isolate", "heal", "kill", "pause", "resume", "restart", "churn",
           "epoch", "link")


class ExtraTraffic(_Model):
    """An extra CE message every validator sends each slot (for experiments)."""

    kind: int = Field(255, ge=128, le=255, description="CE stream kind (128..255)")
    size: int = Field(1024, ge=0, description="bytes per message")
    fanout: int | Literal["grid", "all"] = Field(
        1, description="peers per sender (drawn per slot from the seed), grid or all")
    offset: Duration = Field(1.0, description="when in the slot it is sent")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: int) -> int:
        from jamsim.traffic.config import RESERVED_CE_KINDS

        if value in RESERVED_CE_KINDS:
            raise ValueError(f"kind {value} is the slot traffic's own "
                             f"{RESERVED_CE_KINDS[value]}; pick another CE kind")
        return value

    @field_validator("fanout")
    @classmethod
    def _fanout(cls, value: int | str) -> int | str:
        if isinstance(value, int) and value < 0:
            raise ValueError("fanout must be >= 0, grid or all")
        return value


class Traffic(_Model):
    """JAM slot traffic: CE 141 assurances, UP 0 / CE 128 block propagation.

    On by default; ``traffic: none`` turns it off (then nothing carries data every
    slot, and no delivery tables or metrics are produced).
    """

    slot: PositiveDuration = Field(6.0, gt=0, description="slot length (GP: 6s)")
    assurance_lead: Duration = Field(
        2.0, description="assurances are sent this long before each slot (JAMNP-S: ~2s)")
    block_size: int = Field(100_000, ge=0, description="bytes of a block (CE 128 response)")
    header_size: int = Field(HEADER_BYTES, ge=0, description="bytes of a block header "
                             "(UP 0 announcement); default: the synthetic chain's real header")
    assurance_size: int | None = Field(
        None, ge=0, description="bytes of an assurance; unset: 32 + cores/8 + 64 "
                                "(JAMNP-S CE 141 layout)")
    cores: int | None = Field(None, ge=1, description="core count for the assurance "
                                                      "bitfield; unset: validators / 3")
    extra: list[ExtraTraffic] = Field(default_factory=list,
                                      description="extra per-slot CE messages")

    @model_validator(mode="after")
    def _within_slot(self) -> Traffic:
        if self.assurance_lead >= self.slot:
            raise located(f"assurance_lead {self.assurance_lead:g}s must be shorter than "
                          f"the slot ({self.slot:g}s)", "assurance_lead")
        kinds: set[int] = set()
        for i, extra in enumerate(self.extra):
            if extra.offset >= self.slot:
                raise located(f"offset {extra.offset:g}s must be shorter than the slot "
                              f"({self.slot:g}s)", "extra", i, "offset")
            if extra.kind in kinds:
                raise located(f"kind {extra.kind} is given twice; each extra message "
                              "needs its own kind", "extra", i, "kind")
            kinds.add(extra.kind)
        return self


def _traffic_switch(value: Any) -> Any:
    """``traffic: none`` / ``off`` / ``false`` / ``null`` turn traffic off."""
    if value is None or value is False or (isinstance(value, str)
                                           and value.strip().lower() in ("none", "off")):
        return "none"
    return value


TrafficSection = Annotated[Traffic | Literal["none"], BeforeValidator(_traffic_switch)]


class FullMesh(_Model):
    within: Duration
    after: str | Duration = Field(0.0, description="a time, or an action name "
                                                   "(the last such timeline entry)")


class Percentile(_Model):
    below: Duration
    after: str | Duration = 0.0


class Reached(_Model):
    at_least: Fraction
    after: str | Duration = 0.0


class StaleFor(_Model):
    """Bound on how long any link stays stale (believed, path cut) from ``after`` on."""

    below: Duration
    after: str | Duration = 0.0


class Expectation(_Model):
    full_mesh: FullMesh | None = Field(
        None, description="every expected pair usable (believed at both ends, path open)")
    no_duplicate_connections: bool | None = None
    reconnect_p99: Percentile | None = None
    reconnect_p50: Percentile | None = None
    max_retries_per_pair: int | None = Field(None, ge=0)
    block_propagation_p99: Percentile | None = Field(
        None, description="p99 over (slot, validator) of the time a slot's block takes "
                          "to reach a validator (never = infinite), slots from `after`")
    blocks_reached: Reached | None = Field(
        None, description="fraction of (slot, validator) pairs that got the slot's block "
                          "within the slot, slots from `after`")
    assurances_delivered: Reached | None = Field(
        None, description="fraction of assurances that reached the slot's author before "
                          "the slot began, slots from `after`")
    messages_delivered: Reached | None = Field(
        None, description="fraction of the extra CE messages (traffic: extra) that reached "
                          "their receiver within the slot they were sent in, slots from "
                          "`after`")
    max_stale_links: int | None = Field(
        None, ge=0, description="no sample shows more stale links (held across a cut path "
                                "or to a crashed/paused peer)")
    stale_for: StaleFor | None = Field(
        None, description="no link stays stale longer than `below`, counted from `after`")

    @model_validator(mode="after")
    def _exactly_one(self) -> Expectation:
        chosen = [k for k in type(self).model_fields if getattr(self, k) is not None]
        if len(chosen) != 1:
            raise ValueError(
                "an expectation needs exactly one of "
                f"{', '.join(type(self).model_fields)}; got {chosen or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in type(self).model_fields if getattr(self, k) is not None)


class Scenario(_Model):
    """One experiment: who, over what network, under which policy, what happens."""

    name: str = Field("scenario", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    seed: int = 0
    duration: PositiveDuration = Field(60.0, gt=0)
    sample_interval: PositiveDuration = Field(1.0, gt=0)
    validators: Validators = Field(default_factory=lambda: Validators.model_validate({}))
    network: Network = Field(default_factory=lambda: Network.model_validate({}))
    fidelity: Literal["model", "quic"] = "model"
    policy: Policy = Field(default_factory=lambda: Policy.model_validate({}))
    traffic: TrafficSection = Field(
        default_factory=lambda: Traffic.model_validate({}),
        description="JAM slot traffic (on by default); none turns it off")
    timeline: list[TimelineEntry] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _timeline_within_duration(self) -> Scenario:
        for i, entry in enumerate(self.timeline):
            if entry.at > self.duration:
                raise located(
                    f"timeline entry at {entry.at:g}s is after the end of the run "
                    f"(duration {self.duration:g}s); move it earlier or lengthen "
                    "`duration`", "timeline", i, "at")
        return self


assert set(PRESETS) == {"jamnp-s", "jamixir"}, "keep Policy.preset in sync with PRESETS"


JSON_SCHEMA_DRAFT = "https://json-schema.org/draft/2020-12/schema"
"""The draft pydantic writes; declared so editors and validators pick the right one."""


def json_schema() -> dict[str, Any]:
    """The scenario JSON Schema (``jamsim schema``), declaring its draft."""
    return {"$schema": JSON_SCHEMA_DRAFT, **Scenario.model_json_schema()}
