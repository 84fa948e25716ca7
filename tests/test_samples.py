"""The bundled sample photos (from a registry package) run through the pipeline: this works on a
fresh clone without ../shared."""

from __future__ import annotations

import pytest

from affectlens.samples import sample_images


@pytest.fixture(scope="module")
def samples():
    paths = sample_images()
    if not paths:
        pytest.skip("sample photos not installed (make install puts insightface's wheel in the venv)")
    return {p.name: p for p in paths}


def test_group_photo_and_portrait(recognizer, samples):
    group = recognizer.predict(samples["t1.jpg"])
    assert len(group) == 6
    assert all(abs(sum(f.scores.values()) - 1) < 1e-4 for f in group)
    portrait = recognizer.predict(samples["Tom_Hanks_54745.png"])
    assert len(portrait) == 1 and portrait[0].det_score > 0.9
