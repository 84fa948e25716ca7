"""Reading images safely: every failure becomes an :class:`InvalidImageError` naming the file.

Checks, in order: the path exists and is a file, it is not empty, it is a format whose header
:mod:`affectlens.image_header` parses (others are refused undecoded), every size its headers
announce is below ``max_pixels`` (decompression bombs are refused before any pixel is decoded),
it decodes, and a JPEG is complete. The result is always ``(h, w, 3)`` uint8 BGR: grayscale
is expanded, alpha is composited onto white, 16-bit is scaled to 8-bit, EXIF orientation
is applied.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path

import numpy as np

# OpenCV's own guard (default 2^30 pixels) is far above what we accept; set it before cv2 loads.
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(1 << 28))
import cv2  # noqa: E402

from affectlens.errors import InvalidImageError  # noqa: E402
from affectlens.image_header import SUPPORTED_FORMATS, HeaderError, read_header  # noqa: E402

#: Largest image accepted by default: 100 megapixels (e.g. 12,000 x 8,000).
DEFAULT_MAX_PIXELS = 100_000_000
#: Smallest side in pixels that can hold a detectable face.
MIN_SIDE_PX = 8
#: Largest download accepted by :func:`fetch_url` (bytes).
MAX_DOWNLOAD_BYTES = 50_000_000
_URL = re.compile(r"^https?://", re.IGNORECASE)
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".jp2", ".pgm",
                            ".ppm", ".pbm", ".pnm", ".jpe", ".jfif"})


def sniff_size(head: bytes) -> tuple[str, int, int] | None:
    """Format, width and height from an image's bytes (see :func:`affectlens.image_header.read_header`);
    ``None`` when the bytes are not a supported format or the header is malformed or incomplete."""
    try:
        h = read_header(head)
    except HeaderError:
        return None
    return h.format, h.width, h.height


def _jpeg_complete(data: bytes) -> bool:
    """A JPEG is complete when an end-of-image marker follows the last start-of-scan."""
    sos = data.rfind(b"\xff\xda")
    return sos >= 0 and data.find(b"\xff\xd9", sos) >= 0


def decode_image(data: bytes, name: str = "<bytes>", max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes to ``(h, w, 3)`` uint8 BGR.

    Args:
        data: the encoded file content.
        name: how to name the input in error messages.
        max_pixels: refuse images whose header announces more pixels than this.

    Raises:
        InvalidImageError: empty, too large, undecodable, truncated or too small.
    """
    if not data:
        raise InvalidImageError(f"{name}: empty file (0 bytes)")
    try:
        header = read_header(data)
    except HeaderError as exc:
        raise InvalidImageError(f"{name}: not a decodable image ({exc}); refused without decoding "
                                f"(accepted: {', '.join(SUPPORTED_FORMATS)})") from None
    if header.pixels > max_pixels:
        w, h = header.width, header.height
        raise InvalidImageError(
            f"{name}: {header.format.upper()} header announces {w}x{h} pixels ({header.pixels / 1e6:.0f} MP), "
            f"above the limit of {max_pixels / 1e6:.0f} MP; refused without decoding (possible decompression "
            "bomb). Raise max_pixels if the image is genuine."
        )
    if header.format == "jpeg" and not _jpeg_complete(data):
        raise InvalidImageError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:  # OpenCV's message names its own source files: not for users
        raise InvalidImageError(f"{name}: cannot decode this {header.format.upper()} image (corrupt data)") from None
    if img is None:
        raise InvalidImageError(f"{name}: cannot decode this {header.format.upper()} image (corrupt data)")
    if img.shape[0] * img.shape[1] > max_pixels:  # belt and braces: the header parser missed something
        raise InvalidImageError(f"{name}: {img.shape[1]}x{img.shape[0]} pixels is above the limit of "
                                f"{max_pixels / 1e6:.0f} MP")
    img = to_bgr8(img, name)
    if header.format == "jpeg":
        img = _apply_exif_orientation(buf, img)
    if min(img.shape[:2]) < MIN_SIDE_PX:
        raise InvalidImageError(f"{name}: image is {img.shape[1]}x{img.shape[0]} px; at least "
                                f"{MIN_SIDE_PX}x{MIN_SIDE_PX} px is needed to hold a face")
    return img


def _apply_exif_orientation(buf: np.ndarray, img: np.ndarray) -> np.ndarray:
    # IMREAD_UNCHANGED ignores EXIF orientation; IMREAD_COLOR applies it. Compare shapes cheaply
    # by decoding a reduced copy only when the JPEG carries EXIF.
    if b"Exif" not in buf[:1 << 16].tobytes():
        return img
    oriented = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    return oriented if oriented is not None else img


def to_bgr8(img: np.ndarray, name: str = "<array>") -> np.ndarray:
    """Convert gray, gray+alpha, BGR, BGRA, 16-bit or float images to ``(h, w, 3)`` uint8 BGR.

    Raises:
        InvalidImageError: an unsupported shape or dtype.
    """
    if not isinstance(img, np.ndarray):
        raise InvalidImageError(f"{name}: expected a numpy array, got {type(img).__name__}")
    if img.dtype == np.uint16:
        img = (img.astype(np.float32) / 257.0).round().astype(np.uint8)
    elif img.dtype in (np.float32, np.float64):
        hi = float(np.nanmax(img)) if img.size else 0.0
        img = np.clip(np.nan_to_num(img) * (255.0 if hi <= 1.0 else 1.0), 0, 255).round().astype(np.uint8)
    elif img.dtype == bool:
        img = img.astype(np.uint8) * 255
    elif img.dtype != np.uint8:
        raise InvalidImageError(f"{name}: unsupported pixel type {img.dtype}; expected uint8, uint16 or float")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    if img.ndim != 3 or img.shape[2] not in (1, 2, 3, 4):
        raise InvalidImageError(f"{name}: expected an image with 1, 3 or 4 channels, got shape {img.shape}")
    c = img.shape[2]
    if c == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2BGR)
    if c == 2:
        gray, alpha = img[:, :, 0], img[:, :, 1]
        img = cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)
        return _composite(img, alpha)
    if c == 4:
        return _composite(img[:, :, :3], img[:, :, 3])
    return np.ascontiguousarray(img)


def _composite(bgr: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Alpha-composite onto white (transparent regions become white, not black)."""
    a = alpha.astype(np.float32)[:, :, None] / 255.0
    return (bgr.astype(np.float32) * a + 255.0 * (1 - a)).round().astype(np.uint8)


def is_url(source) -> bool:
    """Whether ``source`` is an ``http://`` or ``https://`` URL string."""
    return isinstance(source, str) and bool(_URL.match(source))


def fetch_url(url: str, timeout_s: float = 10.0, max_bytes: int = MAX_DOWNLOAD_BYTES) -> bytes:
    """Download ``url`` (http or https) into memory.

    Raises:
        InvalidImageError: not an http(s) URL, the server cannot be reached or answers with an
            error, or the body is larger than ``max_bytes``.
    """
    import urllib.error
    import urllib.request

    if not is_url(url):
        raise InvalidImageError(f"{url}: expected an http:// or https:// URL")
    req = urllib.request.Request(url, headers={"User-Agent": "affectlens"})
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:  # noqa: S310 (scheme checked above)
            data = resp.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise InvalidImageError(f"{url}: the server answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise InvalidImageError(f"{url}: cannot download ({reason})") from None
    if len(data) > max_bytes:
        raise InvalidImageError(f"{url}: larger than {max_bytes:,} bytes; download it yourself if it is meant")
    return data


def _from_pil(image) -> np.ndarray:
    """A PIL image as a BGR[A] uint8 array (alpha kept, so it is composited like a PNG's)."""
    alpha = image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info)
    arr = np.asarray(image.convert("RGBA" if alpha else "RGB"))
    return np.ascontiguousarray(arr[:, :, [2, 1, 0, 3] if alpha else [2, 1, 0]])


def _is_pil(source) -> bool:
    return all(hasattr(source, a) for a in ("mode", "size", "convert", "getbands"))


def load_image(source, max_pixels: int = DEFAULT_MAX_PIXELS, allow_urls: bool = False) -> np.ndarray:
    """Read an image from a path, URL, encoded bytes, a PIL image or an array.

    Args:
        source: file path (str or Path), ``http(s)://`` URL (with ``allow_urls``), ``bytes``,
            a ``PIL.Image.Image``, or an ``(h, w[, c])`` array (taken as BGR[A]).
        max_pixels: refuse images with more pixels than this.
        allow_urls: download ``http(s)://`` sources; off by default, so that nothing leaves the
            machine unless asked.

    Returns:
        ``(h, w, 3)`` uint8 BGR array.

    Raises:
        InvalidImageError: the message names the file and the problem.
    """
    if _is_pil(source):
        source = _from_pil(source)
    if isinstance(source, np.ndarray):
        img = to_bgr8(source)
        if min(img.shape[:2]) < MIN_SIDE_PX:
            raise InvalidImageError(f"<array>: image is {img.shape[1]}x{img.shape[0]} px; at least "
                                    f"{MIN_SIDE_PX}x{MIN_SIDE_PX} px is needed to hold a face")
        return img
    if isinstance(source, (bytes, bytearray, memoryview)):
        return decode_image(bytes(source), max_pixels=max_pixels)
    if not isinstance(source, (str, os.PathLike)):
        raise InvalidImageError(f"expected a path, URL, bytes, PIL image or numpy array, got {type(source).__name__}")
    if is_url(source):
        if not allow_urls:
            raise InvalidImageError(f"{source}: a URL; downloading is off by default. Pass allow_urls=True "
                                    "(e.g. EmotionRecognizer().predict(url, allow_urls=True)) or download the file "
                                    "and pass its path")
        return decode_image(fetch_url(source), source, max_pixels)
    path = Path(source)
    if not path.exists():
        raise InvalidImageError(f"{path}: no such file")
    if path.is_dir():
        raise InvalidImageError(f"{path}: is a folder, not an image file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InvalidImageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return decode_image(data, str(path), max_pixels)


def find_images(paths, recursive: bool = True) -> tuple[list[Path], list[tuple[str, str]]]:
    """Expand files and folders into image files.

    Returns:
        ``(images, problems)``: image paths in sorted order per folder, and ``(path, message)``
        for inputs that do not exist or folders that hold no image.
    """
    images: list[Path] = []
    problems: list[tuple[str, str]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found = sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                problems.append((str(p), f"{p}: folder holds no image files ({', '.join(sorted(IMAGE_SUFFIXES))})"))
            images.extend(found)
        elif p.is_file():
            images.append(p)
        else:
            problems.append((str(p), f"{p}: no such file or folder"))
    return images, problems
