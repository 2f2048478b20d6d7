"""Drive ``testnet/quinn-peer``, a JAMNP-S peer on quinn + rustls, from a test.

The peer prints one JSON object per observation on stdout; :meth:`QuinnPeer.event`
reads lines until the named event arrives, and fails with everything the peer
said when the deadline passes or the peer exits first. No sleeps: every wait is
on the peer's output or on the node's state, each bounded.

Whether a missing binary skips or fails is decided here, once: where cargo
exists ``scripts/test.sh`` builds the peer (``scripts/install.sh --dev``) and sets
``JAMSIM_REQUIRE_INTEROP=1``, and then a missing or stale binary fails the test.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRATE = ROOT / "testnet" / "quinn-peer"
BINARY = CRATE / "target" / "debug" / "quinn-peer"
REQUIRE_ENV = "JAMSIM_REQUIRE_INTEROP"
DEADLINE = 10.0
"""Seconds any one wait may take. A loopback handshake and a UP 0 exchange take
milliseconds; the bound is there so a hang fails with the peer's output instead
of stalling the suite, not to absorb slowness."""


def quinn_peer_binary() -> Path:
    """The built peer, or skip (fail under ``JAMSIM_REQUIRE_INTEROP=1``)."""
    reason = None
    if not BINARY.is_file():
        reason = f"{BINARY.relative_to(ROOT)} is not built"
    else:
        sources = [CRATE / "Cargo.toml", CRATE / "Cargo.lock", *CRATE.glob("src/*.rs")]
        built = BINARY.stat().st_mtime
        if any(s.stat().st_mtime > built for s in sources):
            reason = f"{BINARY.relative_to(ROOT)} is older than its sources"
    if reason is None:
        return BINARY
    hint = "(scripts/install.sh --dev builds it when cargo exists)"
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} {hint}; {REQUIRE_ENV}=1: the interop tests must run here",
                    pytrace=False)
    pytest.skip(f"{reason} {hint}")


class QuinnPeer:
    """One running quinn-peer process and everything it has printed so far."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.events: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, binary: Path, *args: str) -> QuinnPeer:
        proc = await asyncio.create_subprocess_exec(
            str(binary), *args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    def _said(self) -> str:
        return "\n".join(json.dumps(e) for e in self.events) or "(nothing)"

    async def event(self, name: str, timeout: float = DEADLINE) -> dict[str, Any]:
        """The first ``name`` event not yet returned, read within ``timeout``."""
        for e in self.events:
            if e["event"] == name and not e.get("_seen"):
                e["_seen"] = True
                return e
        assert self.proc.stdout is not None
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        while True:
            try:
                line = await asyncio.wait_for(self.proc.stdout.readline(), until - loop.time())
            except TimeoutError:
                pytest.fail(f"quinn-peer did not report {name!r} within {timeout} s; "
                            f"it said:\n{self._said()}", pytrace=False)
            if not line:
                await self.proc.wait()
                stderr = await self.proc.stderr.read() if self.proc.stderr else b""
                pytest.fail(f"quinn-peer exited ({self.proc.returncode}) before {name!r}; "
                            f"it said:\n{self._said()}\nstderr: {stderr.decode()[-2000:]}",
                            pytrace=False)
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == name:
                event["_seen"] = True
                return event

    async def finish(self, timeout: float = DEADLINE) -> int:
        """Close its stdin (ends ``--wait-stdin``), read the rest, return its exit code."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        rest = await asyncio.wait_for(self.proc.stdout.read(), timeout)
        self.events.extend(json.loads(line) for line in rest.splitlines() if line.strip())
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()

    def names(self) -> Sequence[str]:
        return [e["event"] for e in self.events]
