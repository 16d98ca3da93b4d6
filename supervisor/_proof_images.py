"""PNG and JPEG headers, read with the stdlib: real magic bytes, the decoded size, a complete end.

A renamed text file, a truncated screenshot or a zero-sized image fails with `ImageError`
saying what was found; nothing here decodes pixels.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

__all__ = ["ImageError", "jpeg_size", "png_size"]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"
# SOFn: every frame header but DHT (C4), JPG (C8) and DAC (CC), which share the range
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM, RST0-7: no length field


class ImageError(ValueError):
    """Raised when a file is not the image it claims to be; the message says what it is instead."""


def show_magic(head: bytes) -> str:
    """Render leading bytes for a message: hex, plus the text they spell when printable."""
    hexed = " ".join(f"{b:02x}" for b in head) or "none: the file is empty"
    text = head.decode("ascii", "replace")
    return f'{hexed} = "{text}"' if head and text.isprintable() else hexed


def png_size(f: BinaryIO, size: int) -> tuple[int, int]:
    """Return (width, height) from the IHDR chunk; check the signature and the IEND trailer."""
    head = f.read(24)
    if head[:8] != PNG_MAGIC:
        raise ImageError(f"not a PNG (magic bytes {show_magic(head[:8])}; "
                         f"a PNG starts {show_magic(PNG_MAGIC)})")
    if len(head) < 24 or head[12:16] != b"IHDR":
        raise ImageError("corrupt PNG: no IHDR chunk after the signature")
    width, height = struct.unpack(">II", head[16:24])
    if width == 0 or height == 0:
        raise ImageError(f"corrupt PNG: IHDR says {width}x{height}")
    f.seek(max(0, size - len(PNG_IEND)))
    if f.read(len(PNG_IEND)) != PNG_IEND:
        raise ImageError(f"truncated PNG: {size} bytes and no IEND chunk at the end")
    return width, height


def jpeg_size(f: BinaryIO, size: int) -> tuple[int, int]:
    """Return (width, height) from the first SOFn frame header; check SOI and the EOI trailer."""
    head = f.read(3)
    if head != JPEG_MAGIC:
        raise ImageError(f"not a JPEG (magic bytes {show_magic(head)}; "
                         f"a JPEG starts {show_magic(JPEG_MAGIC)})")
    f.seek(2)
    while True:
        offset = f.tell()
        byte = f.read(1)
        if byte != b"\xff":
            if not byte:
                raise ImageError("truncated JPEG: the file ends before a frame header (SOFn)")
            raise ImageError(f"corrupt JPEG: expected a marker at byte {offset}, found {byte[0]:02x}")
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes before a marker
            marker = f.read(1)
        if not marker:
            raise ImageError("truncated JPEG: the file ends before a frame header (SOFn)")
        code = marker[0]
        if code in _JPEG_STANDALONE:
            continue
        if code in (0xD8, 0xD9, 0xDA):
            raise ImageError(f"corrupt JPEG: marker ff{code:02x} at byte {offset} before any frame header (SOFn)")
        segment = f.read(2)
        if len(segment) < 2:
            raise ImageError("truncated JPEG: the file ends inside a marker segment")
        (length,) = struct.unpack(">H", segment)
        if length < 2:
            raise ImageError(f"corrupt JPEG: segment ff{code:02x} at byte {offset} has length {length}")
        if code in _JPEG_SOF:
            frame = f.read(5)
            if len(frame) < 5:
                raise ImageError("truncated JPEG: the file ends inside the frame header")
            _precision, height, width = struct.unpack(">BHH", frame)
            break
        f.seek(length - 2, 1)
    if width == 0 or height == 0:
        raise ImageError(f"corrupt JPEG: frame header says {width}x{height}")
    f.seek(max(0, size - 4096))
    if not f.read().rstrip(b"\x00").endswith(JPEG_EOI):
        raise ImageError(f"truncated JPEG: {size} bytes and no end-of-image marker (ff d9)")
    return width, height
