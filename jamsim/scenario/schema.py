"""The scenario file format, as pydantic models.

Every field has a default, so ``name: x`` alone is a valid scenario. Unknown keys
are errors (``extra="forbid"``): a typo must not silently run a different
experiment. Units are parsed by :mod:`jamsim.scenario.units`. Cross-references
(groups naming regions, ``v3`` or ``0..38``) are resolved later by
:mod:`jamsim.scenario.resolve`, which knows the validator count.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from jamsim.core.policy import PRESETS, ConnectionPolicy
from jamsim.scenario.units import parse_bandwidth, parse_duration, parse_fraction

__all__ = ["Scenario"]

Duration = Annotated[float, BeforeValidator(parse_duration)]
Fraction = Annotated[float, BeforeValidator(parse_fraction)]
Bandwidth = Annotated[float, BeforeValidator(parse_bandwidth)]
GroupRef = Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)]

_POLICY_FIELDS = {f.name for f in dataclass_fields(ConnectionPolicy)} - {"name"}
_POLICY_DURATIONS = {"fallback_after", "initial_retry", "max_retry", "min_retry",
                     "reconnect_after_loss", "give_up_after", "connect_timeout",
                     "idle_timeout", "keep_alive_interval"}


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
    median: Duration = Field(0.04, description="typical one-way latency")
    jitter: Duration = Field(0.0, description="spread (standard deviation)")
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


class Policy(_Model):
    """A preset plus any ConnectionPolicy field overridden (durations in units)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    preset: Literal["jamnp-s", "jamixir"] = "jamnp-s"

    @model_validator(mode="after")
    def _known_overrides(self) -> Policy:
        for key in self.model_extra or {}:
            if key not in _POLICY_FIELDS:
                raise ValueError(
                    f"unknown policy field {key!r}; allowed: preset, "
                    + ", ".join(sorted(_POLICY_FIELDS)))
        return self

    def overrides(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for key, value in (self.model_extra or {}).items():
            if key in _POLICY_DURATIONS and value is not None:
                value = parse_duration(value)
            values[key] = value
        return values

    def build(self) -> ConnectionPolicy:
        return ConnectionPolicy.preset(self.preset, **self.overrides())


class Churn(_Model):
    """From this entry's ``at`` until ``until``: each validator in ``fraction`` of
    the set crashes once at a random time and restarts after ``downtime``."""

    fraction: Fraction
    downtime: str = Field("30s..2m", description="range 'min..max' of durations")
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


class FullMesh(_Model):
    within: Duration
    after: str | Duration = Field(0.0, description="a time, or an action name "
                                                   "(the last such timeline entry)")


class Percentile(_Model):
    below: Duration
    after: str | Duration = 0.0


class Expectation(_Model):
    full_mesh: FullMesh | None = None
    no_duplicate_connections: bool | None = None
    reconnect_p99: Percentile | None = None
    reconnect_p50: Percentile | None = None
    max_retries_per_pair: int | None = Field(None, ge=0)

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
    duration: Duration = Field(60.0, gt=0)
    sample_interval: Duration = Field(1.0, gt=0)
    validators: Validators = Field(default_factory=lambda: Validators.model_validate({}))
    network: Network = Field(default_factory=lambda: Network.model_validate({}))
    fidelity: Literal["model", "quic"] = "model"
    policy: Policy = Field(default_factory=lambda: Policy.model_validate({}))
    timeline: list[TimelineEntry] = Field(default_factory=list)
    expect: list[Expectation] = Field(default_factory=list)

    @model_validator(mode="after")
    def _timeline_within_duration(self) -> Scenario:
        for entry in self.timeline:
            if entry.at > self.duration:
                raise ValueError(
                    f"timeline entry at {entry.at:g}s is after the end of the run "
                    f"(duration {self.duration:g}s)")
        return self


assert set(PRESETS) == {"jamnp-s", "jamixir"}, "keep Policy.preset in sync with PRESETS"
