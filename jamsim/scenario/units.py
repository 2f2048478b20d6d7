"""Human units in scenario files: ``250ms``, ``1m30s``, ``5%``, ``100Mbit``.

Plain numbers are accepted too (seconds, fractions, bits per second), so a
generated scenario need not format strings. Every parser raises ``ValueError``
with a message that says what *is* allowed; the loader adds file, line and field.

Each string form is defined by one regular expression, and the same expressions
are published in the JSON Schema (:data:`DURATION_SCHEMA` and friends), so an
editor validating against ``jamsim schema`` accepts exactly the strings the
loader accepts. The patterns use only syntax that means the same in Python and
in ECMA-262 (which JSON Schema prescribes): ``[0-9]``, ``\\s``, ``(?:)``, ``(?=)``.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = [
    "BANDWIDTH_SCHEMA",
    "DURATION_RANGE_SCHEMA",
    "DURATION_SCHEMA",
    "FRACTION_SCHEMA",
    "POSITIVE_DURATION_SCHEMA",
    "parse_bandwidth",
    "parse_duration",
    "parse_fraction",
]

_UNIT = r"(?:us|ms|s|m|h)"
_PART = rf"[0-9]+(?:\.[0-9]+)?\s*{_UNIT}"
_DURATION_BODY = rf"(?:{_PART}\s*)+"
DURATION_PATTERN = rf"^\s*{_DURATION_BODY}$"
"""One or more ``<number><unit>`` parts, e.g. ``1m30s``; spaces between parts allowed."""
POSITIVE_DURATION_PATTERN = rf"^(?=[^1-9]*[1-9]){DURATION_PATTERN[1:]}"
"""A duration pattern that also needs a non-zero digit, so ``0s`` is refused."""
DURATION_RANGE_PATTERN = rf"^\s*{_DURATION_BODY}(?:\.\.\s*{_DURATION_BODY})?$"
"""``30s..2m`` (or a single duration): only used by ``churn.downtime``."""
_DURATION_PART = re.compile(rf"([0-9]+(?:\.[0-9]+)?)\s*({_UNIT})")
_DURATION_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}

_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_EXPONENT = r"(?:[eE][+-]?[0-9]+)"
FRACTION_TEXT = re.compile(rf"\s*({_NUMBER}{_EXPONENT}?)\s*(%?)\s*")
"""What the loader accepts as a fraction string before checking the range.
Exponents are allowed because PyYAML reads ``loss: 1e-5`` as a string."""
_PERCENT_0_100 = r"0*(?:100(?:\.0*)?|[0-9]{1,2}(?:\.[0-9]*)?|\.[0-9]+)"
_FRACTION_0_1 = r"0*(?:1(?:\.0*)?|0(?:\.[0-9]*)?|\.[0-9]+)"
FRACTION_PATTERN = (rf"^\s*(?:{_PERCENT_0_100}\s*%|{_FRACTION_0_1}"
                    rf"|{_NUMBER}{_EXPONENT}\s*%?)\s*$")
"""Fraction strings for the schema: the range 0%..100% is exact for plain
decimals; exponent forms (``1e-5``) are let through and range-checked by the loader."""

_BANDWIDTH_TEXT = r"([0-9]+(?:\.[0-9]+)?)\s*([kKmMgG]?)(?:bit|bps|b)(?:/s)?"
_BANDWIDTH = re.compile(rf"\s*{_BANDWIDTH_TEXT}\s*")
BANDWIDTH_PATTERN = rf"^\s*(?=[0-9.]*[1-9]){_BANDWIDTH_TEXT}\s*$"
"""A positive rate such as ``100Mbit`` (the look-ahead refuses ``0Mbit``)."""
_BANDWIDTH_SCALE = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9}

DURATION_HELP = "a duration such as 250ms, 2s, 1m30s, 2h, or a number of seconds"
FRACTION_HELP = "a percentage such as 5% or 0.5%, or a fraction between 0 and 1"
BANDWIDTH_HELP = "a rate such as 100Mbit, 1Gbit, 500kbit, or a number of bits per second"


def _schema(number: dict[str, Any], pattern: str, help_text: str) -> dict[str, Any]:
    return {"anyOf": [{"type": "number", **number}, {"type": "string", "pattern": pattern}],
            "description": help_text}


DURATION_SCHEMA = _schema({"minimum": 0}, DURATION_PATTERN, DURATION_HELP)
POSITIVE_DURATION_SCHEMA = _schema({"exclusiveMinimum": 0}, POSITIVE_DURATION_PATTERN,
                                   DURATION_HELP + " (more than zero)")
DURATION_RANGE_SCHEMA = {"type": "string", "pattern": DURATION_RANGE_PATTERN,
                         "description": "a range 'min..max' of durations, e.g. 30s..2m"}
FRACTION_SCHEMA = _schema({"minimum": 0, "maximum": 1}, FRACTION_PATTERN, FRACTION_HELP)
BANDWIDTH_SCHEMA = _schema({"exclusiveMinimum": 0}, BANDWIDTH_PATTERN, BANDWIDTH_HELP)


def _number(value: object) -> float | None:
    """A real, finite number as float; None if ``value`` is not a number at all."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {value!r}")
    return float(value)


def _negated(text: str, pattern: str) -> bool:
    """Is ``text`` a valid form with a minus sign in front (``-5s``)? Then the
    message can say what is wrong with it, as it does for the number ``-5``."""
    stripped = text.strip()
    return stripped.startswith("-") and re.fullmatch(pattern, stripped[1:]) is not None


def parse_duration(value: object) -> float:
    """Seconds from ``2m``, ``1m30s``, ``250ms`` or a plain non-negative number."""
    number = _number(value)
    if number is not None:
        if number < 0:
            raise ValueError(f"a duration cannot be negative, got {value}")
        return number
    if not isinstance(value, str):
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    if not value.strip():
        raise ValueError(f"expected {DURATION_HELP}, got an empty string")
    if not re.fullmatch(DURATION_PATTERN[1:-1], value):
        if _negated(value, DURATION_PATTERN[1:-1]):
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        raise ValueError(f"expected {DURATION_HELP}, got {value!r}")
    return sum(float(amount) * _DURATION_UNITS[unit]
               for amount, unit in _DURATION_PART.findall(value))


def parse_fraction(value: object) -> float:
    """A fraction in [0, 1] from ``5%`` or ``0.05``."""
    fraction = _number(value)
    if fraction is None:
        match = FRACTION_TEXT.fullmatch(value) if isinstance(value, str) else None
        if match is None:
            if isinstance(value, str) and _negated(value, FRACTION_TEXT.pattern):
                raise ValueError(f"a fraction cannot be negative, got {value!r}")
            raise ValueError(f"expected {FRACTION_HELP}, got {value!r}")
        fraction = float(match.group(1)) / (100 if match.group(2) else 1)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"must be between 0% and 100%, got {value!r}")
    return fraction


def parse_bandwidth(value: object) -> float:
    """Bits per second from ``100Mbit``, ``1Gbit/s`` or a positive number."""
    number = _number(value)
    if number is not None:
        if number <= 0:
            raise ValueError(f"bandwidth must be positive, got {value}")
        return number
    if isinstance(value, str):
        match = _BANDWIDTH.fullmatch(value)
        if match:
            rate = float(match.group(1)) * _BANDWIDTH_SCALE[match.group(2).lower()]
            if rate > 0:
                return rate
        if _negated(value, _BANDWIDTH.pattern):
            raise ValueError(f"bandwidth must be positive, got {value!r}")
    raise ValueError(f"expected {BANDWIDTH_HELP}, got {value!r}")
