"""Link conditions: the one description of an impaired link, shared by every runtime.

A :class:`LinkSpec` is what one direction of a link does to datagrams: how long
each takes (:class:`LatencySpec`), which are lost (:class:`LossSpec`) and how
fast they serialise (``bandwidth_bps``). The simulator applies it per directed
region pair (:mod:`jamsim.sim.network`), a real node's impairment layer per
remote address and direction (:mod:`jamsim.net.impairment`), and the testnet
backends send it to nodes over their control channels (:meth:`LinkSpec.to_json`
and :meth:`LinkSpec.from_json` are that wire form). One type, and one sampler
for each quantity, is what makes a testnet run impair its links the way its
simulation did.

Pure: no clock, no event loop, no I/O. Randomness comes from the caller's
``random.Random``, consumed in a fixed order per datagram, so a seeded caller
is deterministic. The simulator's event-log digests depend on that order: a
change here is a change of every simulated run.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from jamsim.core.errors import UsageError

__all__ = [
    "Distribution",
    "LatencySpec",
    "LinkDirection",
    "LinkSpec",
    "LossModel",
    "LossSpec",
    "check_direction",
    "lognormal_mean",
]

Distribution = Literal["constant", "normal", "lognormal"]
LossModel = Literal["none", "bernoulli", "gilbert_elliott"]
LinkDirection = Literal["out", "in"]
"""Which datagrams a real node's rule applies to: those it sends to an address
(``out``) or those it receives from one (``in``). The simulator's links are
directed region pairs, so its direction is the pair's order."""

_DISTRIBUTIONS = ("constant", "normal", "lognormal")
_DIRECTIONS = ("out", "in")


def lognormal_mean(median: float, std: float) -> float:
    """Mean of the lognormal distribution with this median and standard deviation.

    With median ``m = exp(mu)`` and ``x = exp(sigma^2)``, the variance is
    ``m^2 x (x - 1)``; solving ``m^2 x (x - 1) = std^2`` for ``x`` gives
    ``x = (1 + sqrt(1 + 4 (std/m)^2)) / 2``, and the mean is ``exp(mu + sigma^2/2)
    = m sqrt(x)``. :class:`LatencySpec`, given this mean and ``std``, recovers the
    same ``mu`` and ``sigma``, so its draws have the requested median.
    """
    if median <= 0:
        return 0.0
    x = (1 + math.sqrt(1 + 4 * (std / median) ** 2)) / 2
    return median * math.sqrt(x)


def check_direction(direction: str) -> LinkDirection:
    """``direction`` as a :data:`LinkDirection`, or a :class:`UsageError` naming the choices."""
    if direction == "out":
        return "out"
    if direction == "in":
        return "in"
    raise UsageError(f"direction must be 'in' or 'out', not {direction!r}")


@dataclass(frozen=True, slots=True)
class LatencySpec:
    """One-way latency of a directed link, in seconds.

    ``distribution``: ``constant`` (always ``mean``), ``normal`` (``mean`` +-
    ``jitter`` standard deviation, truncated at ``minimum``) or ``lognormal``
    (heavy right tail with the given ``mean`` and standard deviation ``jitter``, as
    measured WAN latencies look). Samples never go below ``minimum``. Each packet
    samples independently, so jitter can reorder packets, as real jitter does.

    People state latency as a *median* (what a ping summary reports, and what
    stays put when jitter grows a heavy tail): :meth:`from_median` builds the spec
    from one, and :attr:`median` gives it back.
    """

    mean: float = 0.05
    jitter: float = 0.0
    distribution: Distribution = "constant"
    minimum: float = 0.0

    def __post_init__(self) -> None:
        if self.mean < 0 or self.jitter < 0 or self.minimum < 0:
            raise UsageError("latency mean, jitter and minimum must be >= 0")
        if self.distribution not in _DISTRIBUTIONS:
            raise UsageError(
                f"unknown latency distribution {self.distribution!r}; "
                "choose constant, normal or lognormal"
            )

    @classmethod
    def from_median(cls, median: float, jitter: float = 0.0,
                    distribution: str = "constant") -> LatencySpec:
        """The spec whose draws have this median and standard deviation.

        The median is the mean for ``normal`` (clamping at 0 keeps the median)
        and ``constant``; for ``lognormal`` the mean is larger, by
        :func:`lognormal_mean`. No jitter means a constant delay.
        """
        if distribution not in _DISTRIBUTIONS:
            raise UsageError(f"unknown latency distribution {distribution!r}; "
                             "choose constant, normal or lognormal")
        if not jitter or distribution == "constant":
            return cls(mean=median)
        if distribution == "lognormal":
            return cls(mean=lognormal_mean(median, jitter), jitter=jitter,
                       distribution="lognormal")
        return cls(mean=median, jitter=jitter, distribution="normal")

    @property
    def median(self) -> float:
        """The median draw (before ``minimum``): the inverse of :meth:`from_median`."""
        if self.distribution != "lognormal" or not self.jitter or self.mean == 0:
            return self.mean
        return self.mean / math.sqrt(1 + (self.jitter / self.mean) ** 2)

    @property
    def constant_delay(self) -> float | None:
        """The delay every packet gets, or ``None`` when each one draws its own."""
        if self.distribution == "constant" or self.jitter == 0:
            return max(self.minimum, self.mean)
        return None

    def sample(self, rng: random.Random) -> float:
        """One latency draw."""
        constant = self.constant_delay
        if constant is not None:
            return constant
        if self.distribution == "normal":
            return max(self.minimum, rng.gauss(self.mean, self.jitter))
        if self.mean == 0:
            return self.minimum
        sigma2 = math.log1p((self.jitter / self.mean) ** 2)
        mu = math.log(self.mean) - sigma2 / 2
        return max(self.minimum, rng.lognormvariate(mu, math.sqrt(sigma2)))


@dataclass(frozen=True, slots=True)
class LossSpec:
    """Packet loss on a directed link.

    ``bernoulli``: each packet is lost independently with probability ``rate``.
    ``gilbert_elliott``: a two-state Markov chain per directed node pair, stepped
    once per packet: from *good* it enters *bad* with ``p_good_to_bad``, from *bad*
    it returns with ``p_bad_to_good``; a packet is lost with ``loss_good`` /
    ``loss_bad`` in the respective state. Mean burst length is
    ``1 / p_bad_to_good`` packets. This is what makes a handshake's retransmission
    fail too, which independent loss understates.
    """

    model: LossModel = "none"
    rate: float = 0.0
    p_good_to_bad: float = 0.0
    p_bad_to_good: float = 1.0
    loss_good: float = 0.0
    loss_bad: float = 1.0

    def __post_init__(self) -> None:
        if self.model not in ("none", "bernoulli", "gilbert_elliott"):
            raise UsageError(
                f"unknown loss model {self.model!r}; choose none, bernoulli or gilbert_elliott"
            )
        for name in ("rate", "p_good_to_bad", "p_bad_to_good", "loss_good", "loss_bad"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UsageError(f"loss {name} must be in [0, 1], got {value}")

    @classmethod
    def bernoulli(cls, rate: float) -> LossSpec:
        return cls(model="bernoulli", rate=rate)

    @classmethod
    def bursts(cls, p_good_to_bad: float, p_bad_to_good: float, loss_bad: float = 1.0,
               loss_good: float = 0.0) -> LossSpec:
        return cls(model="gilbert_elliott", p_good_to_bad=p_good_to_bad,
                   p_bad_to_good=p_bad_to_good, loss_bad=loss_bad, loss_good=loss_good)

    @property
    def bursty(self) -> bool:
        """True for Gilbert-Elliott: :meth:`lost` then needs the path's chain state."""
        return self.model == "gilbert_elliott"

    @property
    def mean_loss(self) -> float:
        """Long-run fraction of packets lost (for reports and sanity checks)."""
        if self.model == "bernoulli":
            return self.rate
        if self.model == "gilbert_elliott":
            total = self.p_good_to_bad + self.p_bad_to_good
            bad = self.p_good_to_bad / total if total else 0.0
            return bad * self.loss_bad + (1 - bad) * self.loss_good
        return 0.0

    def lost(self, rng: random.Random, bad: bool = False) -> tuple[bool, bool]:
        """Whether the next packet is lost, and the chain's state after it.

        ``bad`` is the path's Gilbert-Elliott state before this packet (callers
        keep one per directed path; it starts good). Bernoulli ignores it and
        draws once (nothing for a zero rate); Gilbert-Elliott draws the state
        step, then the loss in that state.
        """
        model = self.model
        if model == "bernoulli":
            return self.rate > 0 and rng.random() < self.rate, False
        if model == "none":
            return False, False
        bad = rng.random() >= self.p_bad_to_good if bad else rng.random() < self.p_good_to_bad
        return rng.random() < (self.loss_bad if bad else self.loss_good), bad


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """Everything about one direction of a link: latency, loss, bandwidth.

    ``bandwidth_bps`` is bits per second per directed node pair (``None`` =
    unlimited: no serialisation delay); a burst of datagrams on one path queues
    first in first out.
    """

    latency: LatencySpec = field(default_factory=LatencySpec)
    loss: LossSpec = field(default_factory=LossSpec)
    bandwidth_bps: float | None = None

    def __post_init__(self) -> None:
        if self.bandwidth_bps is not None and self.bandwidth_bps <= 0:
            raise UsageError("bandwidth_bps must be > 0 or None")

    @classmethod
    def unimpaired(cls) -> LinkSpec:
        """No delay, no loss, no bandwidth limit: what a link without a rule does."""
        return cls(latency=LatencySpec(mean=0.0))

    @property
    def is_unimpaired(self) -> bool:
        return self == _UNIMPAIRED

    # ------------------------------------------------------------------ wire form

    def to_json(self) -> dict[str, Any]:
        """The link as a control-channel ``set_link`` request's fields.

        Latency travels as its median (what the request documents); loss as a
        Bernoulli ``loss`` or a Gilbert-Elliott ``burst_loss`` of
        ``[p_good_to_bad, p_bad_to_good, loss_bad]`` plus ``loss_good`` when not 0.
        """
        latency, loss = self.latency, self.loss
        burst: list[float] | None = None
        if loss.bursty:
            burst = [loss.p_good_to_bad, loss.p_bad_to_good, loss.loss_bad]
            if loss.loss_good:
                burst.append(loss.loss_good)
        body: dict[str, Any] = {
            "latency": latency.median,
            "jitter": latency.jitter,
            "loss": loss.rate if loss.model == "bernoulli" else 0.0,
            "burst_loss": burst,
            "distribution": latency.distribution,
            "bandwidth": self.bandwidth_bps,
        }
        if latency.minimum:
            body["minimum"] = latency.minimum
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> LinkSpec:
        """The link a ``set_link`` request describes (inverse of :meth:`to_json`).

        Missing fields mean no impairment of that kind; a malformed field raises
        :class:`UsageError` saying which.
        """
        def number(name: str, default: float = 0.0) -> float:
            value = body.get(name, default)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise UsageError(f"{name!r} must be a number")
            return float(value)

        burst = body.get("burst_loss")
        if burst is not None and (
            not isinstance(burst, list) or len(burst) not in (3, 4)
            or not all(isinstance(p, int | float) and not isinstance(p, bool) for p in burst)
        ):
            raise UsageError("'burst_loss' must be [g2b, b2g, loss_in_bad(, loss_in_good)]")
        bandwidth = body.get("bandwidth")
        if bandwidth is not None and (not isinstance(bandwidth, int | float)
                                      or isinstance(bandwidth, bool) or bandwidth <= 0):
            raise UsageError("'bandwidth' must be a number of bits/s > 0, or null")
        # A jitter without a distribution has always meant a normal one.
        distribution = body.get("distribution", "normal")
        if not isinstance(distribution, str):
            raise UsageError("'distribution' must be constant, normal or lognormal")
        latency = LatencySpec.from_median(number("latency"), number("jitter"), distribution)
        minimum = number("minimum")
        if minimum:
            latency = LatencySpec(latency.mean, latency.jitter, latency.distribution, minimum)
        if burst:
            loss = LossSpec.bursts(*(float(p) for p in burst))
        else:
            rate = number("loss")
            loss = LossSpec.bernoulli(rate) if rate > 0 else LossSpec()
        return cls(latency=latency, loss=loss,
                   bandwidth_bps=float(bandwidth) if bandwidth is not None else None)


_UNIMPAIRED = LinkSpec.unimpaired()
