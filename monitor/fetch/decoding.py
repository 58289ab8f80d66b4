"""Content decoding with a cap on the DECODED size, enforced while streaming.

gzip, deflate and (when installed) brotli, decoded a bounded piece at a time, so a
decompression bomb stops at the body limit instead of filling memory.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Iterator
from typing import Protocol

from monitor.errors import FetchError

try:  # optional: brotli is only advertised when it can be decoded under the same cap
    import brotli as _brotli
except ImportError:  # pragma: no cover - depends on the environment
    _brotli = None

logger = logging.getLogger(__name__)


DECODE_PIECE = 64 * 1024  # decoded bytes produced per step: bounds memory per chunk


class _Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def flush(self) -> Iterator[bytes]: ...


class IdentityDecoder:
    def feed(self, data: bytes) -> Iterator[bytes]:
        if data:
            yield data

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _ZlibDecoder:
    """gzip (multi-member) or deflate (zlib-wrapped or raw), at most 64 KiB per step."""

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._wbits = 16 + zlib.MAX_WBITS if kind == "gzip" else zlib.MAX_WBITS
        self._obj = zlib.decompressobj(self._wbits)
        self._started = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._kind == "deflate" and not self._started and data:
            self._started = True
            # RFC 9110 says zlib-wrapped; some servers send raw deflate. Decide on the header.
            is_zlib = (
                len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
            )
            if not is_zlib:
                self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
        pending = data
        while True:
            out = self._obj.decompress(pending, DECODE_PIECE)
            if out:
                yield out
            if self._obj.eof:
                pending = self._obj.unused_data
                if self._kind != "gzip" or not pending.strip(b"\0"):
                    return  # padding or junk after the stream is ignored, as browsers do
                self._obj = zlib.decompressobj(self._wbits)  # the next gzip member
                continue
            pending = self._obj.unconsumed_tail
            if not pending and len(out) < DECODE_PIECE:
                return

    def flush(self) -> Iterator[bytes]:
        out = self._obj.flush()
        if out:
            yield out


class _BrotliDecoder:
    def __init__(self) -> None:
        assert _brotli is not None
        self._obj = _brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        out = self._obj.process(data, output_buffer_limit=DECODE_PIECE)
        if out:
            yield out
        while not self._obj.can_accept_more_data():
            out = self._obj.process(b"", output_buffer_limit=DECODE_PIECE)
            if not out:
                break
            yield out

    def flush(self) -> Iterator[bytes]:
        return iter(())


class _ChainDecoder:
    """Undo `Content-Encoding: a, b` (applied in that order) lazily, so nothing balloons."""

    def __init__(self, decoders: list[_Decoder]) -> None:
        self._decoders = decoders

    def feed(self, data: bytes) -> Iterator[bytes]:
        return self._through(0, data)

    def _through(self, index: int, data: bytes) -> Iterator[bytes]:
        if index == len(self._decoders):
            if data:
                yield data
            return
        for piece in self._decoders[index].feed(data):
            yield from self._through(index + 1, piece)

    def flush(self) -> Iterator[bytes]:
        for index, decoder in enumerate(self._decoders):
            for piece in decoder.flush():
                yield from self._through(index + 1, piece)


def supported_encodings() -> tuple[str, ...]:
    """Content codings this fetcher can undo under the body cap (sent as Accept-Encoding)."""
    return ("gzip", "deflate", "br") if _brotli is not None else ("gzip", "deflate")


def make_decoder(content_encoding: str) -> _Decoder:
    codings = [c.strip().lower() for c in content_encoding.split(",") if c.strip()]
    decoders: list[_Decoder] = []
    for coding in reversed(codings):  # the last coding applied is undone first
        if coding in ("identity", ""):
            continue
        if coding in ("gzip", "x-gzip"):
            decoders.append(_ZlibDecoder("gzip"))
        elif coding == "deflate":
            decoders.append(_ZlibDecoder("deflate"))
        elif coding == "br" and _brotli is not None:
            decoders.append(_BrotliDecoder())
        else:
            raise FetchError("unsupported_encoding", f"cannot decode Content-Encoding {coding!r}")
    if not decoders:
        return IdentityDecoder()
    return decoders[0] if len(decoders) == 1 else _ChainDecoder(decoders)
