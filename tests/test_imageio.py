"""Bad and unusual image inputs: each is refused with a message naming the file, or read correctly."""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np
import pytest

from affectlens.errors import InvalidImageError
from affectlens.imageio import find_images, load_image, sniff_size
from conftest import IMAGES, need


def _png_header_only(path, w: int, h: int) -> None:
    """A PNG whose IHDR announces w x h pixels followed by a tiny IDAT (a decompression bomb shape)."""
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_missing_path_names_the_file(tmp_path):
    with pytest.raises(InvalidImageError, match=r"nope\.jpg: no such file"):
        load_image(tmp_path / "nope.jpg")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(InvalidImageError, match="is a folder"):
        load_image(tmp_path)


def test_zero_byte_file(tmp_path):
    p = tmp_path / "empty.jpg"
    p.write_bytes(b"")
    with pytest.raises(InvalidImageError, match=r"empty\.jpg: empty file"):
        load_image(p)


def test_random_bytes_named_jpg(tmp_path):
    p = tmp_path / "noise.jpg"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(InvalidImageError, match=r"noise\.jpg: not a decodable image"):
        load_image(p)


def test_truncated_jpeg(tmp_path, single_face_path):
    data = single_face_path.read_bytes()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidImageError, match=r"cut\.jpg: truncated JPEG"):
        load_image(p)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    p = tmp_path / "bomb.png"
    _png_header_only(p, 20000, 20000)
    assert sniff_size(p.read_bytes()) == ("png", 20000, 20000)
    with pytest.raises(InvalidImageError, match=r"bomb\.png: PNG header announces 20000x20000 pixels"):
        load_image(p)


def test_one_pixel_image_is_refused(tmp_path):
    p = tmp_path / "dot.png"
    cv2.imwrite(str(p), np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(InvalidImageError, match=r"dot\.png: image is 1x1 px"):
        load_image(p)


def test_png_with_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:, :10] = (0, 0, 255, 255)  # opaque red left half, transparent right half
    p = tmp_path / "alpha.png"
    cv2.imwrite(str(p), rgba)
    img = load_image(p)
    assert img.shape == (20, 20, 3) and img.dtype == np.uint8
    assert tuple(img[5, 2]) == (0, 0, 255)
    assert tuple(img[5, 15]) == (255, 255, 255)


def test_shared_rgba_photo_reads_as_bgr():
    img = load_image(need(IMAGES / "Image_with_alpha.png"))
    assert img.ndim == 3 and img.shape[2] == 3


def test_16bit_png_is_scaled_to_8bit(tmp_path, single_face_path):
    face = cv2.imread(str(single_face_path))
    p = tmp_path / "deep.png"
    cv2.imwrite(str(p), face.astype(np.uint16) * 257)
    img = load_image(p)
    assert img.dtype == np.uint8
    assert np.abs(img.astype(int) - face.astype(int)).max() <= 1


def test_grayscale_is_expanded_to_three_channels(tmp_path, single_face_path):
    gray = cv2.imread(str(single_face_path), cv2.IMREAD_GRAYSCALE)
    p = tmp_path / "gray.png"
    cv2.imwrite(str(p), gray)
    img = load_image(p)
    assert img.shape == gray.shape + (3,)
    assert (img[..., 0] == gray).all() and (img[..., 2] == gray).all()


def test_bytes_and_arrays_are_accepted(single_face_path):
    from_path = load_image(single_face_path)
    assert np.array_equal(load_image(single_face_path.read_bytes()), from_path)
    assert np.array_equal(load_image(from_path), from_path)


def test_unsupported_source_type():
    with pytest.raises(InvalidImageError, match="expected a path, URL, bytes, PIL image or numpy array"):
        load_image(12345)


def test_find_images_reports_missing_and_empty_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "sub").mkdir()
    cv2.imwrite(str(tmp_path / "sub" / "a.png"), np.zeros((10, 10, 3), np.uint8))
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    images, problems = find_images([tmp_path / "empty", tmp_path / "sub", tmp_path / "ghost.jpg"])
    assert [p.name for p in images] == ["a.png"]
    assert [p for p, _ in problems] == [str(tmp_path / "empty"), str(tmp_path / "ghost.jpg")]
    assert "holds no image files" in problems[0][1] and "no such file" in problems[1][1]


# ----- PIL images and URLs -------------------------------------------------------------------
def test_pil_image_is_read_as_bgr(single_face_path):
    Image = pytest.importorskip("PIL.Image")
    bgr = load_image(single_face_path)
    pil = Image.open(single_face_path)
    assert np.array_equal(load_image(pil), bgr)
    rgba = Image.fromarray(np.dstack([bgr[:, :, ::-1], np.full(bgr.shape[:2], 255, np.uint8)]), "RGBA")
    assert np.array_equal(load_image(rgba), bgr)
    gray = pil.convert("L")
    assert load_image(gray).shape == bgr.shape


def test_url_without_permission_says_how_to_allow_it():
    with pytest.raises(InvalidImageError, match=r"https://example\.com/a\.jpg: a URL; downloading is off") as e:
        load_image("https://example.com/a.jpg")
    assert "allow_urls=True" in str(e.value) and "no such file" not in str(e.value)


@pytest.fixture(scope="module")
def http_root(tmp_path_factory):
    """A real HTTP server on 127.0.0.1 serving a folder with one photo."""
    import functools
    import http.server
    import shutil
    import threading

    root = tmp_path_factory.mktemp("www")
    shutil.copy(need(IMAGES / "single_face.jpg"), root / "face.jpg")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_url_is_downloaded_when_allowed(http_root, single_face_path):
    assert np.array_equal(load_image(f"{http_root}/face.jpg", allow_urls=True), load_image(single_face_path))


def test_url_errors_name_the_url(http_root):
    with pytest.raises(InvalidImageError, match=r"/missing\.jpg: the server answered 404"):
        load_image(f"{http_root}/missing.jpg", allow_urls=True)
    with pytest.raises(InvalidImageError, match=r"http://127\.0\.0\.1:9/x\.jpg: cannot download"):
        load_image("http://127.0.0.1:9/x.jpg", allow_urls=True)
    from affectlens.imageio import fetch_url

    with pytest.raises(InvalidImageError, match="larger than 100 bytes"):
        fetch_url(f"{http_root}/face.jpg", max_bytes=100)
