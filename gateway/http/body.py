"""Request bodies under limits: size checked while streaming, gzip with a bomb cap.

The app disables aiohttp's own payload decompression (``auto_decompress=False``), so
``Content-Encoding: gzip`` arrives compressed and is inflated here with a hard ceiling.
"""

from __future__ import annotations

import zlib

from aiohttp import web

from gateway.errors import InvalidInput, PayloadTooLarge

__all__ = ["UnsupportedEncoding", "gunzip", "read_body"]


class UnsupportedEncoding(InvalidInput):
    """A ``Content-Encoding`` other than gzip/identity: HTTP 415."""

    http_override = 415


async def read_body(request: web.Request, max_bytes: int, max_decompressed: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to exceed ``max_bytes``."""
    length = request.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(
            f"request body of {length} bytes exceeds the limit of {max_bytes} bytes"
        )
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > max_bytes:
            raise PayloadTooLarge(f"request body exceeds the limit of {max_bytes} bytes")
        chunks.append(chunk)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding in ("gzip", "x-gzip"):
        return gunzip(body, max_decompressed)
    raise UnsupportedEncoding(f"unsupported Content-Encoding {encoding!r} (use gzip)")


def gunzip(data: bytes, limit: int) -> bytes:
    """Inflate (possibly multi-member) gzip ``data``; more than ``limit`` bytes → 413."""
    out: list[bytes] = []
    size = 0
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            piece = inflater.decompress(data, limit - size + 1)
        except zlib.error as exc:
            raise InvalidInput(f"invalid gzip request body: {exc}") from None
        size += len(piece)
        if size > limit:
            raise PayloadTooLarge(f"decompressed request body exceeds {limit} bytes")
        if not inflater.eof:
            raise InvalidInput("invalid gzip request body: truncated stream")
        out.append(piece)
        data = inflater.unused_data
    return b"".join(out)
