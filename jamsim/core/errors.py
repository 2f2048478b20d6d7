"""Errors of the sans-IO core, split by whose fault they are (h11 style)."""

from __future__ import annotations

__all__ = ["JamsimError", "UsageError"]


class JamsimError(Exception):
    """Base class of every error jamsim raises on purpose."""


class UsageError(JamsimError, ValueError):
    """Our caller misused an API (bad policy value, unknown preset, bad event)."""
