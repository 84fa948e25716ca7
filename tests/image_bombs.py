"""Decompression bombs for tests: small files whose headers announce huge images, built by hand.

Each builder returns the bytes of a well-formed file of that format (a decoder would allocate
``w * h`` pixels and decode them); sizes stay small because the payload is compressed zeros or absent.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np


def _deflate_zeros(n: int) -> bytes:
    """zlib stream of ``n`` zero bytes, fast: one fully flushed 1 MiB deflate unit repeated (a full
    flush drops the history, so the units are identical and may follow each other), a final block,
    and the Adler-32 of ``n`` zeros (a = 1, b = n mod 65521)."""
    block = 1 << 20
    full, rem = divmod(n, block)
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = z.compress(bytes(block)) + z.flush(zlib.Z_FULL_FLUSH)
    tail_z = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = tail_z.compress(bytes(rem)) + tail_z.flush()
    return b"\x78\xda" + unit * full + tail + struct.pack(">HH", n % 65521, 1)


def tiff_deflate(w: int = 16000, h: int = 16000) -> bytes:
    """A grayscale TIFF, one deflate strip of zeros (about 250 KB for 16000 x 16000)."""
    strip = _deflate_zeros(w * h)
    tags = [(256, 4, w), (257, 4, h), (258, 3, 8), (259, 3, 8), (262, 3, 1), (273, 4, 0), (277, 3, 1),
            (278, 4, h), (279, 4, len(strip))]
    ifd_off = 8
    data_off = ifd_off + 2 + 12 * len(tags) + 4
    ifd = struct.pack("<H", len(tags))
    for tag, typ, val in tags:
        val = data_off if tag == 273 else val
        ifd += struct.pack("<HHI", tag, typ, 1) + (struct.pack("<HH", val, 0) if typ == 3 else struct.pack("<I", val))
    return b"II*\x00" + struct.pack("<I", ifd_off) + ifd + b"\0\0\0\0" + strip


def jpeg_late_sof(w: int = 16000, h: int = 16000, comments: int = 2) -> bytes:
    """A real 16 x 16 JPEG whose frame header says ``w x h``, after ``comments`` 64 KB COM segments."""
    small = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))[1].tobytes()
    i = small.index(b"\xff\xc0")
    sof = bytearray(small[i:])
    sof[5:9] = struct.pack(">HH", h, w)
    com = b"\xff\xfe" + struct.pack(">H", 65535) + bytes(65533)
    return small[:2] + com * comments + small[2:i] + bytes(sof)


def png_ihdr(w: int = 16000, h: int = 16000) -> bytes:
    """A grayscale PNG whose IDAT inflates to every row (zeros)."""
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", _deflate_zeros((w + 1) * h)) + chunk(b"IEND", b""))


def gif_screen(w: int = 16000, h: int = 16000) -> bytes:
    """A GIF whose one frame covers ``w x h`` (LZW data: a clear code and the end code)."""
    return (b"GIF89a" + struct.pack("<HHBBB", w, h, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
            + b"\x2c" + struct.pack("<HHHHB", 0, 0, w, h, 0) + b"\x02\x02\x44\x01\x00\x3b")


def bmp_header(w: int = 16000, h: int = 16000) -> bytes:
    """A 24-bit BMP header for ``w x h`` without the pixel array."""
    return (b"BM" + struct.pack("<IHHI", 54, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, w, h, 1, 24, 0, 0, 0, 0, 0, 0)
            + bytes(64))


def pgm_header(w: int = 16000, h: int = 16000) -> bytes:
    return f"P5\n# bomb\n{w} {h}\n255\n".encode() + bytes(64)


def webp_canvas(w: int = 16000, h: int = 16000) -> bytes:
    """An extended WebP (VP8X) whose canvas and lossless frame say ``w x h``."""
    vp8l = b"\x2f" + ((w - 1) | ((h - 1) << 14)).to_bytes(4, "little") + bytes(16)
    vp8x = bytes([0, 0, 0, 0]) + (w - 1).to_bytes(3, "little") + (h - 1).to_bytes(3, "little")
    body = b"WEBP" + b"VP8X" + struct.pack("<I", 10) + vp8x + b"VP8L" + struct.pack("<I", len(vp8l)) + vp8l
    return b"RIFF" + struct.pack("<I", len(body)) + body


def j2k_codestream(w: int = 16000, h: int = 16000) -> bytes:
    """A JPEG 2000 codestream whose SIZ marker says ``w x h`` (one component, no tile data)."""
    siz = struct.pack(">HIIIIIIIIH", 0, w, h, 0, 0, w, h, 0, 0, 1) + b"\x07\x01\x01"
    return b"\xff\x4f\xff\x51" + struct.pack(">H", len(siz) + 2) + siz + b"\xff\xd9"


BOMBS = {"tiff-deflate": tiff_deflate, "jpeg-late-sof": jpeg_late_sof, "png": png_ihdr, "gif": gif_screen,
         "bmp": bmp_header, "pgm": pgm_header, "webp": webp_canvas, "jpeg2000": j2k_codestream}
