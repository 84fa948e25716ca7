"""Image headers are read without decoding: every format round-trips, every bomb is refused undecoded,
hostile or truncated headers fail with :class:`HeaderError` only."""

from __future__ import annotations

import io
import struct
import time

import cv2
import numpy as np
import pytest

from affectlens.errors import InvalidImageError
from affectlens.image_header import HeaderError, read_header
from affectlens.imageio import decode_image
from image_bombs import BOMBS, jpeg_late_sof, tiff_deflate

_IMG = (np.random.default_rng(0).random((30, 40, 3)) * 255).astype(np.uint8)
_CV_FORMATS = [".jpg", ".png", ".bmp", ".webp", ".tif", ".ppm", ".pgm", ".pbm", ".pam", ".pfm", ".ras", ".hdr",
               ".gif", ".jp2"]


def _encode(ext: str) -> bytes:
    img = _IMG if ext not in (".pgm", ".pbm") else _IMG[:, :, 0]
    if ext == ".hdr":
        img = img.astype(np.float32) / 255
    if ext == ".jp2":
        img = cv2.resize(img, (400, 300))  # OpenJPEG's default resolutions need more than 30 x 40
    ok, buf = cv2.imencode(ext, img)
    assert ok, ext
    return buf.tobytes()


@pytest.mark.parametrize("ext", _CV_FORMATS)
def test_every_format_opencv_writes_has_its_size_read_from_the_header(ext):
    data = _encode(ext)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    header = read_header(data)
    assert (header.height, header.width) == decoded.shape[:2]
    assert decode_image(data).shape[:2] == decoded.shape[:2]


@pytest.mark.parametrize("fmt, kw", [("GIF", {"save_all": True}), ("WEBP", {"save_all": True}),
                                     ("PNG", {"save_all": True}), ("TIFF", {"compression": "tiff_deflate"}),
                                     ("JPEG2000", {}), ("JPEG", {"progressive": True})])
def test_files_written_by_pillow_including_animations(fmt, kw):
    Image = pytest.importorskip("PIL.Image")
    frames = [Image.fromarray(_IMG), Image.fromarray(_IMG[::-1].copy())]
    bio = io.BytesIO()
    frames[0].save(bio, fmt, append_images=frames[1:] if kw.get("save_all") else [], **kw)
    header = read_header(bio.getvalue())
    assert (header.width, header.height) == (40, 30)


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_every_bomb_is_refused_before_decoding(kind):
    data = BOMBS[kind]()
    assert len(data) < 1_000_000
    t0 = time.perf_counter()
    with pytest.raises(InvalidImageError, match=r"bomb: .* header announces 16000x16000 pixels .*refused without "
                                                r"decoding"):
        decode_image(data, "bomb")
    assert time.perf_counter() - t0 < 0.5  # decoding 256 MP would take seconds and gigabytes


def test_jpeg_frame_header_after_many_comment_segments():
    assert read_header(jpeg_late_sof(comments=5)).pixels == 16000 * 16000
    small = jpeg_late_sof(64, 48, comments=3)  # a genuine small one still decodes
    assert decode_image(small).shape == (48, 64, 3)


def test_tiff_second_page_or_huge_tiles_count_too():
    one = _encode(".tif")
    e = "<" if one[:2] == b"II" else ">"
    # chain the bomb's directory after the first page of a genuine TIFF
    bomb = tiff_deflate()
    first_ifd = struct.unpack(e + "I", one[4:8])[0]
    n = struct.unpack(e + "H", one[first_ifd:first_ifd + 2])[0]
    next_ptr = first_ifd + 2 + 12 * n
    assert e == "<"
    shift = len(one)
    rebased = bytearray(bomb)
    ifd = 8
    for k in range(struct.unpack("<H", bomb[ifd:ifd + 2])[0]):
        p = ifd + 2 + 12 * k
        if struct.unpack("<H", bomb[p:p + 2])[0] == 273:
            rebased[p + 8:p + 12] = struct.pack("<I", struct.unpack("<I", bomb[p + 8:p + 12])[0] + shift)
    two = bytearray(one) + rebased
    two[next_ptr:next_ptr + 4] = struct.pack("<I", shift + 8)
    header = read_header(bytes(two))
    assert header.pixels == 16000 * 16000
    with pytest.raises(InvalidImageError, match="16000x16000"):
        decode_image(bytes(two))


@pytest.mark.parametrize("data, match", [
    (b"\x00\x00\x00 ftypavif\x00\x00\x00\x00mif1avif", "unknown or unsupported"),  # AVIF: not parsed, refused
    (b"<html><body>hi</body></html>", "unknown or unsupported"),
    (b"\xff\xd8\xff\xda\x00\x08" + bytes(64), "no frame header"),                   # scan before any frame
    (b"II*\x00\xff\xff\xff\x7f", "malformed TIFF"),                                   # IFD beyond the end
])
def test_unsupported_or_broken_headers(data, match):
    with pytest.raises(HeaderError, match=match):
        read_header(data)
    with pytest.raises(InvalidImageError, match="not a decodable image"):
        decode_image(data)


@pytest.mark.parametrize("ext", _CV_FORMATS)
def test_truncated_and_corrupted_headers_raise_only_header_errors(ext):
    data = _encode(ext)
    rng = np.random.default_rng(len(data))
    variants = [data[:n] for n in range(1, min(len(data), 200))]
    for _ in range(200):
        b = bytearray(data[:512])
        for i in rng.integers(0, len(b), 4):
            b[i] = int(rng.integers(0, 256))
        variants.append(bytes(b))
    for v in variants:
        try:
            read_header(v)
        except HeaderError:
            pass


def test_decode_errors_carry_no_opencv_source_paths():
    data = bytearray(_encode(".png"))
    data[60:200] = bytes(140)  # corrupt the compressed pixels
    with pytest.raises(InvalidImageError) as info:
        decode_image(bytes(data), "x.png")
    assert ".cpp" not in str(info.value) and "opencv" not in str(info.value).lower()
