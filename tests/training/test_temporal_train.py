"""``affectlens train-temporal`` on a tiny run: cached sequences, seeded, resumable, exported model loads
(needs PyTorch: the 'train' extra)."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from affectlens.labels import EMOTIONS  # noqa: E402
from affectlens.temporal.learned import LearnedSmoother  # noqa: E402
from affectlens.temporal.synth import SynthRecipe  # noqa: E402
from affectlens.training.temporal import TemporalConfig, load_temporal_config, train_temporal  # noqa: E402
from conftest import FER2013, need  # noqa: E402


@pytest.mark.slow
def test_tiny_run_is_cached_resumable_and_exports_a_working_model(tmp_path):
    cfg = TemporalConfig(data=str(need(FER2013)), out_dir=str(tmp_path), name="tiny", n_train=4, n_val=2, n_test=2,
                         hidden=8, epochs=2, batch_size=2, recipe=SynthRecipe(frames=24))
    first = train_temporal(cfg)
    assert [h["epoch"] for h in first["history"]] == [1, 2]
    cached = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("seq-*.npz")}
    assert sorted(cached) == ["seq-test.npz", "seq-train.npz", "seq-val.npz"]
    cfg.epochs = 3
    resumed = train_temporal(cfg, resume=True)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3], "continues at epoch 3"
    assert resumed["history"][:2] == first["history"], "the first two epochs are kept, not redone"
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("seq-*.npz")} == cached, "sequences not rescored"
    spec = json.loads((tmp_path / "tiny.json").read_text())
    assert spec["labels"] == list(EMOTIONS) and spec["hidden"] == 8 and spec["recipe"]["frames"] == 24
    sm = LearnedSmoother(tmp_path / "tiny.json", labels=EMOTIONS)
    with np.load(tmp_path / "seq-test.npz") as z:
        out = sm.smooth_sequence(z["probs"][0], z["feats"][0, :, :4], z["t_ms"][0])
    assert out.shape == (24, 7) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_config_file_and_overrides(tmp_path):
    toml = tmp_path / "t.toml"
    toml.write_text('hidden = 16\nepochs = 5\n[recipe]\nframes = 32\nfps_range = [10.0, 20.0]\n')
    cfg = load_temporal_config(toml, ["epochs=7", "classifier=fer-vgg48s"])
    assert (cfg.hidden, cfg.epochs, cfg.classifier) == (16, 7, "fer-vgg48s")
    assert cfg.recipe.frames == 32 and cfg.recipe.fps_range == (10.0, 20.0)
    with pytest.raises(ValueError, match="KEY=VALUE"):
        load_temporal_config(None, ["nonsense=1"])
    with pytest.raises(ValueError, match="epochs: expected a int"):
        load_temporal_config(None, ["epochs=many"])
    toml.write_text("bogus = 1\n")
    with pytest.raises(ValueError, match="unknown temporal config key"):
        load_temporal_config(toml)
