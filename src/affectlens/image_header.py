"""Image dimensions read from the encoded bytes, without decoding a pixel.

:func:`read_header` knows every format this library decodes and returns the largest width and
height any part of the file announces (all TIFF directories and tiles, every GIF frame, every
WebP/PNG animation frame, a JPEG 2000 file's box header *and* its codestream), so that a
decompression bomb is refused before the decoder allocates anything. Formats OpenCV could decode
but that are not parsed here (AVIF, OpenEXR, anything unknown) are refused: a header we cannot
read is never handed to a decoder.

Accepted: JPEG, PNG/APNG, GIF, BMP, WebP, TIFF/BigTIFF, PNM (PBM/PGM/PPM), PAM, PFM, JPEG 2000
(JP2 and raw codestream), Sun raster, Radiance HDR.

Example:
    >>> read_header(open("photo.jpg", "rb").read())
    ImageHeader(format='jpeg', width=640, height=480, channels=3)
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

#: Formats :func:`read_header` parses; anything else is refused.
SUPPORTED_FORMATS = ("jpeg", "png", "gif", "bmp", "webp", "tiff", "pnm", "pam", "pfm", "jpeg2000", "sunras", "hdr")
_MAX_PARTS = 4096  # IFDs, GIF frames, chunks... walked before giving up (bounded work on hostile input)


class HeaderError(ValueError):
    """The bytes are not a supported image format, or its header is malformed or truncated."""


@dataclass(frozen=True)
class ImageHeader:
    """What a header announces.

    Attributes:
        format: one of :data:`SUPPORTED_FORMATS`.
        width / height: the largest frame, canvas, tile or strip any part of the file announces.
        channels: samples per pixel where the header says (else 0).
    """

    format: str
    width: int
    height: int
    channels: int = 0

    @property
    def pixels(self) -> int:
        """Width x height, counted once more per four samples beyond the first four (memory, not area)."""
        return self.width * self.height * max(1, -(-self.channels // 4))


def detect_format(head: bytes) -> str | None:
    """The format named by the first bytes (16 are enough), ``None`` when not a supported one."""
    if head[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:2] == b"BM":
        return "bmp"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if head[:2] in (b"P1", b"P2", b"P3", b"P4", b"P5", b"P6") and head[2:3].isspace():
        return "pnm"
    if head[:3] == b"P7\n":
        return "pam"
    if head[:2] in (b"PF", b"Pf") and head[2:3].isspace():
        return "pfm"
    if head[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or head[:4] == b"\xff\x4f\xff\x51":
        return "jpeg2000"
    if head[:4] == b"\x59\xa6\x6a\x95":
        return "sunras"
    if head[:10] == b"#?RADIANCE" or head[:6] == b"#?RGBE":
        return "hdr"
    return None


def read_header(data: bytes) -> ImageHeader:
    """Width and height of an encoded image, from its headers only.

    Raises:
        HeaderError: unknown or unsupported format, or a malformed/truncated header (message says which).
    """
    fmt = detect_format(data[:16])
    if fmt is None:
        raise HeaderError("unknown or unsupported format")
    try:
        w, h, c = _PARSERS[fmt](data)
    except (struct.error, IndexError, KeyError, AttributeError, ValueError) as exc:
        raise HeaderError(f"malformed {fmt.upper()} header ({exc or 'truncated'})") from None
    if w <= 0 or h <= 0:
        raise HeaderError(f"{fmt.upper()} header announces an empty image ({w}x{h})")
    return ImageHeader(fmt, w, h, c)


def _grow(size, w, h):
    return max(size[0], w), max(size[1], h)


def _jpeg(d: bytes):
    i = 2
    while i < len(d):
        if d[i] != 0xFF:
            raise ValueError(f"expected a marker at byte {i}")
        while i < len(d) and d[i] == 0xFF:  # fill bytes
            i += 1
        marker = d[i]
        i += 1
        if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:
            continue
        if marker in (0xD9, 0xDA):
            raise ValueError("no frame header before the image data")
        length = struct.unpack(">H", d[i:i + 2])[0]
        if length < 2:
            raise ValueError(f"segment length {length}")
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            h, w, c = struct.unpack(">HHB", d[i + 3:i + 8])
            return w, h, c
        i += length
    raise ValueError("no frame header")


def _png(d: bytes):
    if d[12:16] != b"IHDR":
        raise ValueError("IHDR is not the first chunk")
    size = struct.unpack(">II", d[16:24])
    i = 33
    for _ in range(_MAX_PARTS):  # animation frames (fcTL) may not exceed the canvas; check anyway
        if i + 8 > len(d):
            break
        n, kind = struct.unpack(">I4s", d[i:i + 8])
        if kind == b"fcTL":
            size = _grow(size, *struct.unpack(">II", d[i + 12:i + 20]))
        if kind in (b"IDAT", b"IEND"):
            break
        i += 12 + n
    return size[0], size[1], 0


def _gif(d: bytes):
    size = struct.unpack("<HH", d[6:10])
    flags = d[10]
    i = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    for _ in range(_MAX_PARTS):
        if i >= len(d) or d[i] == 0x3B:
            break
        if d[i] == 0x21:  # extension: label, then sub-blocks
            i = _gif_skip_blocks(d, i + 2)
        elif d[i] == 0x2C:  # image descriptor
            x, y, w, h, f = struct.unpack("<HHHHB", d[i + 1:i + 10])
            size = _grow(size, x + w, y + h)
            i += 10 + (3 << ((f & 7) + 1) if f & 0x80 else 0)
            i = _gif_skip_blocks(d, i + 1)  # LZW minimum code size, then data sub-blocks
        else:
            raise ValueError(f"unexpected block 0x{d[i]:02x}")
    return size[0], size[1], 0


def _gif_skip_blocks(d: bytes, i: int) -> int:
    while i < len(d) and d[i]:
        i += 1 + d[i]
    return i + 1


def _bmp(d: bytes):
    hsize = struct.unpack("<I", d[14:18])[0]
    if hsize == 12:  # OS/2 BITMAPCOREHEADER
        w, h = struct.unpack("<HH", d[18:22])
    elif hsize >= 40:
        w, h = struct.unpack("<ii", d[18:26])
    else:
        raise ValueError(f"header size {hsize}")
    return abs(w), abs(h), 0


def _webp(d: bytes):
    size, i, end = (0, 0), 12, min(len(d), 8 + struct.unpack("<I", d[4:8])[0])
    for _ in range(_MAX_PARTS):
        if i + 8 > end:
            break
        kind, n = d[i:i + 4], struct.unpack("<I", d[i + 4:i + 8])[0]
        body = d[i + 8:i + 8 + n]
        if kind == b"VP8X":
            size = _grow(size, 1 + int.from_bytes(body[4:7], "little"), 1 + int.from_bytes(body[7:10], "little"))
        elif kind == b"ANMF":
            size = _grow(size, int.from_bytes(body[0:3], "little") * 2 + 1 + int.from_bytes(body[6:9], "little"),
                         int.from_bytes(body[3:6], "little") * 2 + 1 + int.from_bytes(body[9:12], "little"))
            inner = _webp(b"RIFF" + struct.pack("<I", 4 + len(body) - 16) + b"WEBP" + body[16:]) if n > 16 else None
            if inner:
                size = _grow(size, inner[0], inner[1])
        elif kind == b"VP8 ":
            if body[3:6] != b"\x9d\x01\x2a":
                raise ValueError("VP8 key frame start code missing")
            w, h = struct.unpack("<HH", body[6:10])
            size = _grow(size, w & 0x3FFF, h & 0x3FFF)
        elif kind == b"VP8L":
            if body[0] != 0x2F:
                raise ValueError("VP8L signature missing")
            bits = int.from_bytes(body[1:5], "little")
            size = _grow(size, 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF))
        i += 8 + n + (n & 1)
    if size == (0, 0):
        raise ValueError("no image chunk")
    return size[0], size[1], 0


_TIFF_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_TIFF_INTS = {1: "B", 3: "H", 4: "I", 6: "b", 8: "h", 9: "i", 13: "I", 16: "Q", 17: "q", 18: "Q"}


def _tiff(d: bytes):
    e = "<" if d[:2] == b"II" else ">"
    big = struct.unpack(e + "H", d[2:4])[0] == 43
    off = struct.unpack(e + "Q", d[8:16])[0] if big else struct.unpack(e + "I", d[4:8])[0]
    size, channels, seen = (0, 0), 0, set()
    cnt_fmt, ent_size, next_fmt = (e + "Q", 20, e + "Q") if big else (e + "H", 12, e + "I")
    cnt_len = 8 if big else 2
    pending = [off]
    while pending and len(seen) < _MAX_PARTS:
        off = pending.pop()
        if off == 0 or off in seen:
            continue
        seen.add(off)
        n = struct.unpack(cnt_fmt, d[off:off + cnt_len])[0]
        if n > _MAX_PARTS:
            raise ValueError(f"{n} entries in one directory")
        tags = {}
        for k in range(n):
            p = off + cnt_len + k * ent_size
            tag, typ = struct.unpack(e + "HH", d[p:p + 4])
            count = struct.unpack(e + ("Q" if big else "I"), d[p + 4:p + (12 if big else 8)])[0]
            if typ not in _TIFF_INTS or count < 1:
                continue
            vpos = p + (12 if big else 8)
            nbytes = _TIFF_TYPES[typ] * count
            if nbytes > (8 if big else 4):
                vpos = struct.unpack(e + ("Q" if big else "I"), d[vpos:vpos + (8 if big else 4)])[0]
            if tag == 330:  # SubIFDs: walk them too
                pending += [struct.unpack(e + _TIFF_INTS[typ], d[vpos + j * _TIFF_TYPES[typ]:
                                                                  vpos + (j + 1) * _TIFF_TYPES[typ]])[0]
                            for j in range(min(count, 64))]
            else:
                tags[tag] = struct.unpack(e + _TIFF_INTS[typ], d[vpos:vpos + _TIFF_TYPES[typ]])[0]
        w, h = tags.get(256, 0), tags.get(257, 0)
        if not (w and h):
            raise ValueError(f"directory at byte {off} has no width/height")
        size = _grow(size, w, h)
        size = _grow(size, tags.get(322, 0), tags.get(323, 0))  # tiles
        size = _grow(size, 0, min(tags.get(278, 0), h))         # rows per strip (clamped by decoders)
        channels = max(channels, tags.get(277, 1))
        p = off + cnt_len + n * ent_size
        pending.append(struct.unpack(next_fmt, d[p:p + (8 if big else 4)])[0])
    return size[0], size[1], channels


_PNM_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n?)*(\d+)")


def _pnm(d: bytes):
    m1 = _PNM_TOKEN.match(d, 2)
    m2 = _PNM_TOKEN.match(d, m1.end()) if m1 else None
    if not m2:
        raise ValueError("no width and height")
    return int(m1.group(1)), int(m2.group(1)), 0


def _pam(d: bytes):
    head = d[:4096].split(b"ENDHDR", 1)[0]
    fields = dict(re.findall(rb"^(WIDTH|HEIGHT|DEPTH)\s+(\d+)", head, re.M))
    return int(fields[b"WIDTH"]), int(fields[b"HEIGHT"]), int(fields.get(b"DEPTH", b"0"))


def _pfm(d: bytes):
    w, h = re.match(rb"P[Ff]\s+(\d+)\s+(\d+)", d[:256]).groups()
    return int(w), int(h), 3 if d[1:2] == b"F" else 1


def _j2k_siz(d: bytes, i: int):
    if d[i:i + 4] != b"\xff\x4f\xff\x51":
        raise ValueError("codestream does not start with SOC, SIZ")
    x, y, x0, y0, tw, th, tx0, ty0, c = struct.unpack(">IIIIIIIIH", d[i + 8:i + 42])
    return (x - x0, y - y0), (tw, th), c


def _jpeg2000(d: bytes):
    if d[:4] == b"\xff\x4f\xff\x51":
        (w, h), _tile, c = _j2k_siz(d, 0)
        return w, h, c
    size, found, i = (0, 0), False, 0
    for _ in range(_MAX_PARTS):
        if i + 8 > len(d):
            break
        n, kind = struct.unpack(">I4s", d[i:i + 8])
        hdr = 8
        if n == 1:
            n, hdr = struct.unpack(">Q", d[i + 8:i + 16])[0], 16
        if kind == b"jp2h":  # superbox: walk it for ihdr
            j = i + hdr
            while j + 8 <= i + (n or len(d) - i):
                m, sub = struct.unpack(">I4s", d[j:j + 8])
                if sub == b"ihdr":
                    h, w = struct.unpack(">II", d[j + 8:j + 16])
                    size, found = _grow(size, w, h), True
                if m < 8:
                    break
                j += m
        elif kind == b"jp2c":
            (w, h), _tile, c = _j2k_siz(d, i + hdr)
            return max(size[0], w), max(size[1], h), c
        if n == 0:
            break
        i += n
    if not found:
        raise ValueError("no image header box")
    raise ValueError("no codestream box")


def _sunras(d: bytes):
    w, h, depth = struct.unpack(">III", d[4:16])
    return w, h, max(1, depth // 8)


def _hdr(d: bytes):
    m = re.search(rb"\n\n([-+][YX]) (\d+) ([-+][YX]) (\d+)", d[:65536])
    if not m:
        raise ValueError("no resolution line")
    a, b = int(m.group(2)), int(m.group(4))
    return (b, a, 3) if m.group(1).endswith(b"Y") else (a, b, 3)


_PARSERS = {"jpeg": _jpeg, "png": _png, "gif": _gif, "bmp": _bmp, "webp": _webp, "tiff": _tiff, "pnm": _pnm,
            "pam": _pam, "pfm": _pfm, "jpeg2000": _jpeg2000, "sunras": _sunras, "hdr": _hdr}
