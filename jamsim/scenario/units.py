"""Human units in scenario files: ``250ms``, ``1m30s``, ``5%``, ``100Mbit``.

Plain numbers are accepted too (seconds, fractions, bits per second), so a
generated scenario need not format strings. Every parser raises ``ValueError``
with a message that says what *is* allowed; the loader adds file, line and field.
"""

from __future__ import annotations

import re

__all__ = ["parse_bandwidth", "parse_duration", "parse_fraction"]

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|s|m|h)")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_BANDWIDTH = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmMgG]?)(bit|bps|b)(?:/s)?")
_BANDWIDTH_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}

DURATION_HELP = "a duration such as 250ms, 2s, 1m30s, 2h, or a number of seconds"
FRACTION_HELP = "a percentage such as 5% or 0.5%, or a fraction between 0 and 1"
BANDWIDTH_HELP = "a rate such as 100Mbit, 1Gbit, 500kbit, or a number of bits per second"


def parse_duration(value: object) -> float:
    """Seconds from ``2m``, ``1m30s``, ``250ms`` or a plain non-negative number."""
    if isinstance(value, bool):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    text = value.strip().replace(" ", "")
    if not text:
        raise ValueError(f"expected {DURATION_HELP}, got an empty string")
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    return total


def parse_fraction(value: object) -> float:
    """A fraction in [0, 1] from ``5%`` or ``0.05``."""
    if isinstance(value, bool):
        raise ValueError(f"expected {FRACTION_HELP}, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            fraction = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"expected {FRACTION_HELP}, got {value!r}") from None
    elif isinstance(value, int | float):
        fraction = float(value)
    else:
        raise ValueError(f"expected {FRACTION_HELP}, got {value!r}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"must be between 0% and 100%, got {value!r}")
    return fraction


def parse_bandwidth(value: object) -> float:
    """Bits per second from ``100Mbit``, ``1Gbit/s`` or a positive number."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value <= 0:
            raise ValueError(f"bandwidth must be positive, got {value}")
        return float(value)
    if isinstance(value, str):
        match = _BANDWIDTH.fullmatch(value.strip())
        if match:
            rate = float(match.group(1)) * _BANDWIDTH_SCALE[match.group(2).lower()]
            if rate > 0:
                return rate
    raise ValueError(f"expected {BANDWIDTH_HELP}, got {value!r}")
