"""Reading an object whose size and contents a tenant controls, with a fixed memory bound.

urllib3 decodes `Content-Encoding: gzip` on the fly, so a 200 KiB object can become 200 MiB in
memory. Here the body is read raw, a chunk at a time, and decompressed with a ceiling on the output.
"""

from __future__ import annotations

import zlib

from urllib3 import BaseHTTPResponse

CHUNK = 64 * 1024


class ObjectTooLargeError(ValueError):
    """The object (or what it decompresses to) is larger than the reader accepts."""


def read_bounded(response: BaseHTTPResponse, limit: int) -> bytes:
    """At most `limit` bytes of body, decompressed if the server says it is gzip; larger raises."""
    raw = bytearray()
    for chunk in response.stream(CHUNK, decode_content=False):
        raw += chunk
        if len(raw) > limit:
            raise ObjectTooLargeError(f"larger than {limit} bytes")
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    if encoding not in ("gzip", "x-gzip"):
        return bytes(raw)
    inflate = zlib.decompressobj(wbits=31)
    try:
        body = inflate.decompress(bytes(raw), limit + 1)
    except zlib.error as exc:
        raise ObjectTooLargeError(f"not valid gzip ({exc})") from None
    if len(body) > limit or inflate.unconsumed_tail:
        raise ObjectTooLargeError(f"decompresses to more than {limit} bytes")
    return body
