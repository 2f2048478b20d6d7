"""How many datagrams the kernel dropped at one UDP socket because its receive
buffer was full: the node's own evidence that it cannot keep up.

Linux lists every UDP socket of the process's network namespace in
``/proc/self/net/udp`` (and ``udp6``), one line each, the socket's inode in the
10th column and its ``drops`` counter in the 13th (``proc(5)``; the counter is
``sk_drops``, which a full receive buffer increments). The socket is found by
its inode, so other sockets bound to the same port (another node's, after a
restart) are never read. ``SO_RXQ_OVFL`` would say the same per datagram, but
only to ``recvmsg`` callers, and asyncio's datagram transport uses ``recvfrom``.

Where the file does not exist (not Linux) the counter is unavailable and the
node simply reports nothing.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

__all__ = ["HasFileno", "ReceiveDropCounter", "drops_of_inode", "socket_drops", "socket_inode"]

class HasFileno(Protocol):
    """A socket, or asyncio's wrapper of one (``transport.get_extra_info("socket")``)."""

    def fileno(self) -> int: ...


_TABLES = (Path("/proc/self/net/udp"), Path("/proc/self/net/udp6"))
_INODE, _DROPS = 9, 12


def socket_inode(sock: HasFileno) -> str:
    """The inode of ``sock``, as ``/proc/net/udp`` writes it. A socket keeps its
    inode for its whole life, so a caller reading the counter repeatedly asks once."""
    return str(os.fstat(sock.fileno()).st_ino)


def socket_drops(sock: HasFileno, tables: tuple[Path, ...] = _TABLES) -> int | None:
    """The ``drops`` counter of ``sock`` (a UDP socket), or None where the
    kernel does not publish it (no such table, or the socket is not in it)."""
    return drops_of_inode(socket_inode(sock), tables)


def drops_of_inode(inode: str, tables: tuple[Path, ...] = _TABLES) -> int | None:
    """The ``drops`` counter of the UDP socket with ``inode`` (:func:`socket_inode`),
    or None where the kernel does not publish it."""
    for table in tables:
        try:
            text = table.read_text()
        except OSError:
            continue
        for line in text.splitlines()[1:]:
            fields = line.split()
            if len(fields) > _DROPS and fields[_INODE] == inode:
                return int(fields[_DROPS])
    return None


class ReceiveDropCounter:
    """Datagrams ``sock`` dropped since the previous :meth:`new_drops` call."""

    def __init__(self, sock: HasFileno, tables: tuple[Path, ...] = _TABLES) -> None:
        # found once: the node reads the counter every second for the socket's life
        self._inode = socket_inode(sock)
        self._tables = tables
        self._last = drops_of_inode(self._inode, tables)
        self.total = 0
        """Drops seen since this counter was made."""

    @property
    def available(self) -> bool:
        """Whether the kernel publishes the counter for this socket."""
        return self._last is not None

    def new_drops(self) -> int:
        """Drops since the last call (0 when unavailable)."""
        now = drops_of_inode(self._inode, self._tables)
        if now is None or self._last is None:
            return 0
        new, self._last = max(0, now - self._last), now
        self.total += new
        return new
