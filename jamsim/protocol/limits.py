"""Size and time limits a node applies to what peers send, per protocol.

JAMNP-S frames every message with a u32 size, so on the wire a message may claim
up to 4 GiB; a node must refuse far less before buffering anything (the framing
decoder checks the size prefix first). The caps below are the largest message
each protocol can legitimately carry, so a well-formed message always fits and
anything larger is refused by resetting the stream with
``ResetCode.PROTOCOL_ERROR``. docs/real-nodes.md lists them with the refusal each
one causes on the wire.

Full-scale Gray Paper constants are used (V = 1023 validators, C = 341 cores), so
the caps hold for any smaller network too.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "CE_REQUEST_TIMEOUT",
    "MAX_BLOCK_SIZE",
    "MAX_CE128_REQUEST",
    "MAX_HEADER_SIZE",
    "MAX_STREAMS_PER_CONNECTION",
    "MAX_UNFINISHED_RESETS",
    "MAX_UP0_MESSAGE",
]

HASH: Final = 32
SLOT: Final = 4
GP_VALIDATORS: Final = 1023
GP_CORES: Final = 341
GP_EPOCH_LENGTH: Final = 600
GP_MAX_TICKETS_PER_BLOCK: Final = 16
GP_TICKET_PROOF: Final = 784
GP_MAX_REPORT_OUTPUT: Final = 48 * 1024  # W_R: total size of a work-report's outputs
MAX_LEAVES: Final = 1 << 16  # jamsim.protocol.messages bounds handshake leaves here

MAX_CE128_REQUEST: Final = HASH + 1 + 4
"""Header Hash ++ Direction ++ Maximum Blocks: exactly 37 bytes."""

MAX_HEADER_SIZE: Final = 256 * 1024
"""A GP header is a few hundred bytes plus its optional markers: the epoch marker
(two entropy hashes and V Bandersnatch + Ed25519 keys, ~65 KB at V = 1023), the
winning-tickets marker (E tickets of 33 bytes, ~20 KB) and the offenders list.
256 KiB holds all of them at full scale with room to spare."""

MAX_BLOCK_SIZE: Final = (
    MAX_HEADER_SIZE
    + GP_MAX_TICKETS_PER_BLOCK * (4 + 1 + GP_TICKET_PROOF)
    + GP_CORES * (GP_MAX_REPORT_OUTPUT + 16 * 1024)  # a guarantee per core
    + GP_VALIDATORS * (HASH + (GP_CORES + 7) // 8 + 2 + 64)  # an assurance per validator
    + 4 * 1024 * 1024  # preimages and disputes: no GP byte bound; jamsim's budget
)
"""The largest block a CE 128 response message may carry (~26 MiB).

Neither JAMNP-S nor the Gray Paper states one number, so this adds up the GP's
per-block extrinsic bounds at full scale: the header, 16 tickets, one guarantee
per core (a work-report's outputs are capped at W_R = 48 KiB; 16 KiB more covers
its fixed fields, work digests and three signatures), one assurance per validator,
and a 4 MiB budget for preimages and disputes, which the GP bounds by count, not
bytes. A block up to this size is accepted; a larger size prefix resets the stream."""

MAX_UP0_MESSAGE: Final = max(HASH + SLOT + 3 + MAX_LEAVES * (HASH + SLOT),
                             MAX_HEADER_SIZE + HASH + SLOT)
"""A UP 0 handshake with the most leaves jamsim accepts, or an announcement."""

CE_REQUEST_TIMEOUT: Final = 5.0
"""Seconds a served CE stream may take to deliver its whole request and FIN.

A CE 128 request is 37 bytes written together with its FIN, so any live peer
finishes it within one round trip plus loss recovery; 5 s (the JAMNP-S example
timeout, and the preset's connect timeout) is many times that even on a lossy
intercontinental path. A stream still unfinished then is reset
(``ResetCode.CANCELLED``) so it holds no buffer for the connection's lifetime."""

MAX_STREAMS_PER_CONNECTION: Final = 128
"""Streams a connection may have open at once: the QUIC ``max_streams_bidi``
credit aioquic grants (128), which it tops up by one for each peer stream that
finishes in both directions (RFC 9000, 4.6). A peer opening a stream beyond its
credit has the whole connection closed by QUIC with STREAM_LIMIT_ERROR (0x4). The
node checks the same cap on its own side too and resets a stream opened beyond it
(``ResetCode.REJECTED``). One UP 0 plus the CE requests in flight need far fewer."""

MAX_UNFINISHED_RESETS: Final = 1024
"""Streams we reset whose peer half is still open (the peer ignored STOP_SENDING,
which RFC 9000 tells it to answer with RESET_STREAM). Past this the connection is
closed (code 0x109): their ids must be remembered so late bytes are not taken for
a new stream, and a peer must not make that set grow without bound."""
