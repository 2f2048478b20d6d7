"""Link rules in the terms of a control request, for the impairment tests."""

from __future__ import annotations

from jamsim.links import LinkSpec


def rule(latency: float = 0.0, jitter: float = 0.0, loss: float = 0.0,
         burst_loss: tuple[float, float, float] | None = None, distribution: str = "normal",
         bandwidth_bps: float | None = None) -> LinkSpec:
    """The LinkSpec a ``set_link`` request with these fields gives a node
    (median ``latency``, ``jitter`` its deviation)."""
    return LinkSpec.from_json({"latency": latency, "jitter": jitter, "loss": loss,
                               "burst_loss": list(burst_loss) if burst_loss else None,
                               "distribution": distribution, "bandwidth": bandwidth_bps})
