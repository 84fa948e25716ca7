"""RetinaFace detection on real photos, and face-box recall/precision on hand-labelled boxes."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from affectlens.datasets.dlib_xml import load_dlib_boxes
from affectlens.detection import DetectorOptions, RetinaFaceDetector, nms
from affectlens.imageio import load_image
from affectlens.metrics import match_detections
from conftest import DETECTION, IMAGES, need


@pytest.fixture(scope="module")
def detector():
    return RetinaFaceDetector()


@pytest.mark.parametrize("name, expected", [
    ("single_face.jpg", 1), ("BWPictureHuman.jpg", 1), ("Image_with_alpha.png", 1),
    ("free-mountain-vector-01.jpg", 0),
])
def test_faces_found_in_shared_photos(detector, name, expected):
    found = detector.detect(load_image(need(IMAGES / name)))
    assert len(found) == expected


def test_group_photo(detector):
    img = load_image(need(IMAGES / "multi_face.jpg"))
    found = detector.detect(img)
    assert len(found) >= 4
    assert found.xyxy.shape == (len(found), 4) and found.landmarks.shape == (len(found), 5, 2)
    assert (np.diff(found.scores) <= 0).all(), "sorted by score"
    # Landmarks sit inside their boxes; the image-left eye is left of the image-right eye.
    x1, y1, x2, y2 = found.xyxy.T
    lx, ly = found.landmarks[..., 0], found.landmarks[..., 1]
    assert ((lx >= x1[:, None] - 2) & (lx <= x2[:, None] + 2) & (ly >= y1[:, None] - 2) & (ly <= y2[:, None] + 2)).all()
    assert (found.landmarks[:, 0, 0] < found.landmarks[:, 1, 0]).all()


def test_recall_and_precision_on_labelled_boxes(detector):
    boxes = load_dlib_boxes(need(DETECTION / "training.xml"))
    tp = fp = fn = 0
    for path, truth in boxes.items():
        a, b, c = match_detections(detector.detect(load_image(path)).xyxy, truth, iou_threshold=0.5)
        tp, fp, fn = tp + a, fp + b, fn + c
    recall, precision = tp / (tp + fn), tp / (tp + fp)
    assert tp + fn == 18
    assert recall >= 0.9, f"recall {recall:.3f}"
    assert precision >= 0.85, f"precision {precision:.3f}"


def test_large_images_are_downscaled_and_mapped_back(detector):
    img = load_image(need(IMAGES / "single_face.jpg"))
    small = detector.detect(img)
    big_img = cv2.resize(img, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    big = RetinaFaceDetector(DetectorOptions(max_side_px=max(img.shape[:2]))).detect(big_img)
    assert len(big) == len(small) == 1
    assert np.allclose(big.xyxy[0] / 3, small.xyxy[0], atol=max(4.0, 0.05 * float(small.xyxy[0, 2] - small.xyxy[0, 0])))


def test_min_face_and_max_faces_filter(detector):
    img = load_image(need(IMAGES / "multi_face.jpg"))
    all_faces = detector.detect(img)
    sides = np.minimum(all_faces.xyxy[:, 2] - all_faces.xyxy[:, 0], all_faces.xyxy[:, 3] - all_faces.xyxy[:, 1])
    cut = float(np.median(sides))
    big = RetinaFaceDetector(DetectorOptions(min_face_px=cut)).detect(img)
    assert len(big) == int((sides >= cut).sum()) < len(all_faces) or len(big) == len(all_faces) == int((sides >= cut).sum())
    assert len(RetinaFaceDetector(DetectorOptions(max_faces=2)).detect(img)) == 2


def test_options_are_validated():
    with pytest.raises(ValueError, match="min_score"):
        DetectorOptions(min_score=1.5)
    with pytest.raises(ValueError, match="max_side_px"):
        DetectorOptions(max_side_px=8)


def test_rejects_non_bgr_arrays(detector):
    with pytest.raises(ValueError, match=r"\(h, w, 3\) uint8"):
        detector.detect(np.zeros((10, 10), np.uint8))


def test_nms_drops_overlaps():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], np.float32)
    assert list(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5)) == [0, 2]


@pytest.mark.parametrize("side", [64, 200, 1200, 2400])
def test_a_face_filling_the_frame_is_one_face(detector, side):
    """From ~60 px to far beyond the largest anchor (512 px): one face, not its parts."""
    img = load_image(need(IMAGES / "single_face.jpg"))
    x1, y1, x2, y2 = detector.detect(img).xyxy[0].astype(int)
    crop = img[y1:y2, x1:x2]
    crop = cv2.resize(crop, (side, int(side * crop.shape[0] / crop.shape[1])), interpolation=cv2.INTER_CUBIC)
    found = detector.detect(crop)
    assert len(found) == 1
    bx1, by1, bx2, by2 = found.xyxy[0]
    assert (bx2 - bx1) > 0.7 * side


def test_small_faces_down_to_about_20_px(detector):
    img = load_image(need(IMAGES / "multi_face.jpg"))
    n = len(detector.detect(img))
    small = cv2.resize(img, None, fx=0.2, fy=0.2, interpolation=cv2.INTER_AREA)
    found = detector.detect(small)
    assert len(found) == n
    assert (found.xyxy[:, 2] - found.xyxy[:, 0]).min() < 22


def test_windows_around_known_faces_find_the_same_faces(detector):
    img = load_image(need(IMAGES / "multi_face.jpg"))
    full = detector.detect(img)
    moved = full.xyxy + np.array([6.0, -5.0, 6.0, -5.0], np.float32)  # a tracker's slightly-off prediction
    for rows, tolerance in ((slice(0, 2), 0.03), (slice(None), 0.08)):  # few windows keep more pixels per face
        near = detector.detect_regions(img, moved[rows])
        assert len(near) >= len(full.xyxy[rows])  # a neighbour inside a window is a real face too
        for box, pts in zip(full.xyxy[rows], full.landmarks[rows]):
            j = int(np.abs(near.xyxy - box).sum(1).argmin())
            side = float(box[2] - box[0])
            assert np.abs(near.xyxy[j] - box).max() < 0.2 * side
            assert np.abs(near.landmarks[j] - pts).mean() < tolerance * side
    # a window at the image corner (partly outside) and one on empty wall find nothing wrong
    h, w = img.shape[:2]
    edge = detector.detect_regions(img, np.array([[-40.0, -40.0, 20.0, 20.0], [w - 30.0, h - 30.0, w + 10.0, h + 10.0]]))
    assert len(edge) == 0
    assert len(detector.detect_regions(img, np.zeros((0, 4)))) == 0
    with pytest.raises(ValueError, match="uint8"):
        detector.detect_regions(img.astype(np.float32), moved)


def test_network_input_is_bgr_minus_the_mean_in_nchw_for_a_batch(detector):
    """``_run`` builds the network input channel by channel; the network must see exactly
    ``(image - mean)`` as NCHW float32, for one image and for a batch of windows."""
    from affectlens.detection import _MEAN_BGR

    from affectlens.samples import sample_images

    photo = cv2.resize(load_image(sample_images()[0]), (320, 240))
    batch = np.stack([photo, photo[::-1].copy(), np.zeros_like(photo)])
    reference = np.ascontiguousarray((batch.astype(np.float32) - _MEAN_BGR).transpose(0, 3, 1, 2))
    want = detector._session.run(None, {detector._input: reference})
    got = detector._run(batch)
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
