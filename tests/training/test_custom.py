"""Custom models end to end on real faces: CK+ faces placed in photos → ``dataset prepare``
(detection + alignment) → ``train --data`` (fine-tuned from the default base, interrupted and
resumed) → ``evaluate`` (HTML) → ``affectlens image --model MODEL_DIR``; subject-disjoint
splits, the model folder loading everywhere, and bad inputs failing clearly with nothing lost."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest

from affectlens.errors import DatasetError
from conftest import SHARED, need

torch = pytest.importorskip("torch")

CKPLUS48 = SHARED / "ckplus48"
N_PER_CLASS = 4  # subjects per class: 14 subjects, 138 faces, all 7 classes


def _photo(crop_path, size=(360, 480)) -> np.ndarray:
    """A CK+ face upscaled 4x and placed in a plain photo, so the detector has to find it."""
    face = cv2.resize(cv2.imread(str(crop_path)), (192, 192), interpolation=cv2.INTER_CUBIC)
    canvas = np.full((*size, 3), 190, np.uint8)
    canvas[80:272, 140:332] = face
    return canvas


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "affectlens", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_subject_splits_never_share_a_subject():
    from affectlens.training.splits import check_disjoint, grouped_folds, subject_split

    rng = np.random.default_rng(1)
    subjects = rng.integers(0, 40, 600).astype(str)
    labels = rng.integers(0, 5, 600)
    parts = subject_split(subjects, labels, {"train": .7, "val": .15, "test": .15})
    check_disjoint(subjects, parts)
    assert sum(len(v) for v in parts.values()) == 600
    assert 0.08 < len(parts["test"]) / 600 < 0.25
    fold = grouped_folds(subjects, labels, 5)
    for s in np.unique(subjects):
        assert len(set(fold[subjects == s])) == 1
    assert sorted(set(fold)) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least k subjects"):
        grouped_folds(subjects[:3], labels[:3], 5)


def test_network_started_from_shipped_onnx_reproduces_it():
    from affectlens.classifier import EmotionClassifier
    from affectlens.preprocess import to_model_input
    from affectlens.training.custom import make_net
    from affectlens.models.registry import resolve_spec

    spec = resolve_spec("ferplus-vgg48s")
    crops = np.stack([cv2.imread(str(p)) for p in sorted(need(CKPLUS48).glob("*/*.png"))[::60]])
    net, fresh = make_net(spec, spec.labels, pretrained=True)
    assert fresh == []
    x = torch.from_numpy(to_model_input(crops, spec.input))
    with torch.no_grad():
        z = (net.eval()(x) + net(torch.flip(x, dims=[3]))) / 2
    probs = torch.softmax(z / spec.temperature, 1).numpy()
    assert np.abs(probs - EmotionClassifier(spec).classify_crops(crops)).max() < 1e-4
    _, fresh = make_net(spec, ("happy", "boredom"), pretrained=True)
    assert fresh == ["boredom"]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """``photos/<CK+ class name>/S###_....jpg`` for the faces of the first subjects."""
    root = tmp_path_factory.mktemp("custom") / "photos"
    files = sorted(need(CKPLUS48).glob("*/*.png"))
    subjects: set[str] = set()
    for cls in sorted({f.parent.name for f in files}):  # a few subjects of every class, contempt included
        subjects |= set(sorted({f.name[:4] for f in files if f.parent.name == cls})[:N_PER_CLASS])
    for f in files:
        if f.name[:4] in subjects:
            (root / f.parent.name).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / f.parent.name / f"{f.stem}.jpg"), _photo(f))
    return root


@pytest.fixture(scope="module")
def trained(photos):
    """Prepare the photos (CLI), fine-tune from the default (interrupted after one epoch, then resumed)."""
    from affectlens.training.custom import CustomTrainOptions, train_custom

    work = photos.parent
    r = _cli("dataset", "prepare", photos, "--out", work / "ds", "-q")
    assert r.returncode == 0, r.stderr
    opts = CustomTrainOptions(epochs=2, threads=2, seed=0)

    def stop_after_one(row):
        if row["epoch"] == 1 and row["run"] == "final":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_custom(work / "ds", work / "model", opts, progress=stop_after_one)
    assert not (work / "model" / "model.json").exists()
    rows = []
    metrics = train_custom(work / "ds", work / "model", opts, resume=True, progress=rows.append)
    assert rows[0]["epoch"] == 2  # resumed after the interrupted first epoch
    return work, metrics


@pytest.mark.slow
def test_fine_tuned_model_beats_the_base_on_held_out_subjects(trained):
    work, metrics = trained
    from affectlens.datasets.prepare import load_prepared

    ds = load_prepared(work / "ds")
    assert ds.meta["faces"] > 120 and set(ds.meta["problems"]) <= {"multi_face"}  # every face found
    splits = json.loads((work / "model" / "splits.json").read_text())
    subj = dict(zip(ds.ids.tolist(), ds.subjects.tolist()))
    sides = {k: {subj[i] for i in splits[k]} for k in ("train", "val", "test")}
    assert not (sides["train"] & sides["test"]) and not (sides["val"] & sides["test"]) and not (sides["train"] & sides["val"])
    assert len(sides["test"]) >= 2
    base = metrics["base_test"]
    assert base["model"] == "ferplus-vgg48s" and len(base["classes"]) >= 5  # the classes its test subjects show
    assert metrics["test"]["accuracy"] > base["accuracy"] + 0.05, (metrics["test"], base)
    card = (work / "model" / "MODEL_CARD.md").read_text()
    assert "No subject is in two splits" in card and "ferplus-vgg48s" in card and "informed consent" in card


@pytest.mark.slow
def test_model_folder_loads_everywhere(trained, photos):
    from affectlens import EmotionRecognizer
    from affectlens.video.analyzer import VideoAnalyzer, VideoOptions
    from affectlens.recognizer import RecognizerOptions

    work, _ = trained
    model = work / "model"
    labels = json.loads((model / "model.json").read_text())["labels"]
    assert set(labels) == {"angry", "contempt", "disgust", "fear", "happy", "sad", "surprise"}
    test_id = json.loads((model / "splits.json").read_text())["test"][0]
    from affectlens.datasets.prepare import load_prepared

    ds = load_prepared(work / "ds")
    photo = ds.sources[list(ds.ids).index(test_id)]  # a held-out subject's photo
    faces = EmotionRecognizer(model=str(model)).predict(photo)
    assert len(faces) == 1 and faces.labels == tuple(labels)
    frame = cv2.imread(photo)
    analyzed = VideoAnalyzer(VideoOptions(recognizer=RecognizerOptions(model=str(model)))).process(frame, 0.0)
    assert analyzed.labels == tuple(labels)
    from affectlens.classifier import EmotionClassifier

    int8 = json.loads((model / "model-int8.json").read_text())  # portable int8 beside the fp32 model
    assert int8["metrics"]["fp32_agreement_test"] >= 0.9 and int8["labels"] == labels
    # both align as the data set was prepared (the base's roll dead band)
    bands = {json.loads((model / f).read_text())["alignment"].get("roll_dead_band_deg") for f in ("model.json", "model-int8.json")}
    assert bands == {ds.meta["alignment"]["roll_dead_band_deg"]} == {15}
    assert EmotionClassifier(str(model / "model-int8.onnx")).classify_crops(ds.images[:4]).shape == (4, len(labels))
    r = _cli("image", photo, "--model", model, "--json", "-", "-q")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["labels"] == labels and len(out["images"][0]["faces"]) == 1
    r = _cli("evaluate", "--model", model, "--data", work / "ds", "--html", work / "report.html", "--json", "-")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["split"] == "test" and report["n"] == len(json.loads((model / "splits.json").read_text())["test"])
    assert report["base"]["model"] == "ferplus-vgg48s"
    html = (work / "report.html").read_text()
    assert "Most confident mistakes" in html and "data:image/png;base64" in html and "ferplus-vgg48s" in html


@pytest.mark.slow
def test_bad_training_inputs_fail_clearly_and_lose_nothing(trained, tmp_path):
    from affectlens.datasets.prepare import load_prepared, prepare_dataset
    from affectlens.datasets.sources import find_items
    from affectlens.training.custom import CustomTrainOptions, train_custom

    work, _ = trained
    before = (work / "model" / "model.onnx").read_bytes()
    r = _cli("train", "--data", work / "ds", "--out", work / "model", "--epochs", "1")
    assert r.returncode == 2 and "--overwrite" in r.stderr and "Traceback" not in r.stderr
    assert (work / "model" / "model.onnx").read_bytes() == before
    with pytest.raises(DatasetError, match=r"no faces labelled \['neutral'\]"):
        train_custom(work / "ds", tmp_path / "m1", CustomTrainOptions(labels=("happy", "neutral")))
    # one class only
    src = tmp_path / "one"
    shutil.copytree(need(CKPLUS48) / "happy", src / "happy", ignore=lambda d, names: sorted(names)[12:])
    prepare_dataset(find_items(src), tmp_path / "one_ds")
    with pytest.raises(DatasetError, match="only one class"):
        train_custom(tmp_path / "one_ds", tmp_path / "m2", CustomTrainOptions(epochs=1))
    # a base whose crop template differs from the one the data set was cut to
    spec = json.loads((work / "model" / "model.json").read_text())
    spec["alignment"]["points_norm"][0] = [0.30, 0.40]
    shutil.copy(work / "model" / "model.onnx", tmp_path / "other.onnx")
    (tmp_path / "other.json").write_text(json.dumps({**spec, "file": "other.onnx"}))
    with pytest.raises(DatasetError, match="prepare again"):
        train_custom(work / "ds", tmp_path / "m3", CustomTrainOptions(base=str(tmp_path / "other.json")))
    # a base that aligns with another roll dead band (here: a full alignment)
    spec = json.loads((work / "model" / "model.json").read_text())
    spec["alignment"]["roll_dead_band_deg"] = 0
    (tmp_path / "other.json").write_text(json.dumps({**spec, "file": "other.onnx"}))
    with pytest.raises(DatasetError, match=r"roll dead band of 15°, but --base .*other.json aligns with 0°.*prepare again"):
        train_custom(work / "ds", tmp_path / "m3", CustomTrainOptions(base=str(tmp_path / "other.json")))
    # a data set prepared before the dead band existed was aligned fully: the shipped base refuses it
    old = tmp_path / "old_ds"
    shutil.copytree(work / "ds", old)
    meta = json.loads((old / "dataset.json").read_text())
    del meta["alignment"]["roll_dead_band_deg"]
    (old / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"roll dead band of 0°, but --base .* aligns with 15°.*prepare again"):
        train_custom(old, tmp_path / "m3", CustomTrainOptions(epochs=1))
    assert load_prepared(work / "ds").meta["faces"] > 120  # the data set is untouched
    assert not (tmp_path / "m2" / "model.json").exists() and not (tmp_path / "m3" / "model.json").exists()
