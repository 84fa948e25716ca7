"""Training augmentation: mixup and CutMix keep images and targets consistent (needs PyTorch)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from affectlens.training.augment import AugmentConfig, augment, mix_batch  # noqa: E402
from affectlens.training.config import load_config  # noqa: E402


def _batch(n=16, c=7):
    g = torch.Generator().manual_seed(0)
    # each face a constant image holding its index: a mixed pixel tells which faces it came from
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 48, 48).clone()
    return x, torch.randint(0, c, (n,), generator=g)


def test_off_by_default_leaves_the_batch_alone():
    x, y = _batch()
    cfg = AugmentConfig()
    assert not cfg.mixes
    out, probs, lam = mix_batch(x, y, 7, cfg)
    assert out is x and lam == 1.0
    assert torch.equal(probs.argmax(1), y) and torch.allclose(probs.sum(1), torch.ones(len(y)))


def test_mixup_blends_images_and_targets_with_the_same_weight():
    x, y = _batch()
    out, probs, lam = mix_batch(x, y, 7, AugmentConfig(mixup_alpha=0.4), torch.Generator().manual_seed(1))
    assert 0.0 < lam < 1.0
    # pixel value = lam * i + (1 - lam) * j: recover the partner j and check the target mix
    partner = (out[:, 0, 0, 0] - lam * torch.arange(16.0)) / (1 - lam)
    j = partner.round().long()
    assert torch.allclose(partner, j.float(), atol=1e-4)
    expected = lam * torch.nn.functional.one_hot(y, 7) + (1 - lam) * torch.nn.functional.one_hot(y[j], 7)
    assert torch.allclose(probs, expected.float(), atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(16))


def test_cutmix_weights_targets_by_the_pasted_area():
    x, y = _batch()
    teacher = torch.softmax(torch.randn(16, 7, generator=torch.Generator().manual_seed(2)), 1)
    for seed in range(5):
        out, probs, lam = mix_batch(x, teacher, 7, AugmentConfig(cutmix_alpha=1.0), torch.Generator().manual_seed(seed))
        own = (out == torch.arange(16.0).view(16, 1, 1, 1)).float().mean(dim=(1, 2, 3))
        # faces paired with another keep exactly a fraction lam of their pixels (one paired with
        # itself by the shuffle keeps all of them)
        assert lam < 1.0 and float(own.min()) == pytest.approx(lam, abs=1e-6)
        assert torch.allclose(probs.sum(1), torch.ones(16), atol=1e-6)
        assert (probs >= 0).all()


def test_mixing_is_reproducible_from_the_generator_and_respects_mix_prob():
    x, y = _batch()
    cfg = AugmentConfig(mixup_alpha=0.2, cutmix_alpha=1.0)
    a = mix_batch(x, y, 7, cfg, torch.Generator().manual_seed(3))
    b = mix_batch(x, y, 7, cfg, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and a[2] == b[2]
    never = AugmentConfig(mixup_alpha=0.2, mix_prob=0.0)
    assert not never.mixes and mix_batch(x, y, 7, never)[2] == 1.0


def test_mixing_settings_load_from_overrides():
    cfg = load_config(None, ["augment.mixup_alpha=0.2", "augment.cutmix_alpha=1", "augment.mix_prob=0.5"])
    assert cfg.augment.mixes and cfg.augment.mix_prob == 0.5


def test_augment_keeps_shape_and_range():
    x = torch.rand(8, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    out = augment(x, AugmentConfig(), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    assert not torch.equal(out, x)


def _faces(n=8, seed=0):
    """Smooth face-like test images: a bright disc on a dark ground with a sharp edge."""
    ys, xs = torch.meshgrid(torch.arange(48.0), torch.arange(48.0), indexing="ij")
    disc = (((ys - 24) ** 2 + (xs - 24) ** 2) < 14 ** 2).float() * 0.6 + 0.2
    return disc.expand(n, 1, 48, 48).clone()


def _edge_energy(x):
    return float(((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean())  # squared: blur spreads an edge, lowering it


def test_video_degradations_are_off_by_default_and_keep_shape_and_range():
    from affectlens.training.augment import degrade

    x = _faces()
    assert torch.equal(degrade(x, AugmentConfig()), x)
    cfg = AugmentConfig(lowres_prob=1, blur_prob=1, jpeg_prob=1, gamma_prob=1, noise_std=0.05)
    out = degrade(x, cfg, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and float(out.min()) >= 0 and float(out.max()) <= 1
    again = degrade(x, cfg, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)  # reproducible from the generator


@pytest.mark.parametrize("option", [dict(lowres_prob=1.0, lowres_px=(12, 12)), dict(blur_prob=1.0, blur_max_px=7),
                                    dict(jpeg_prob=1.0, jpeg_quality=(5, 5))])
def test_resolution_blur_and_jpeg_change_the_face_and_soften_edges(option):
    from affectlens.training.augment import degrade

    x = _faces()
    out = degrade(x, AugmentConfig(**option), torch.Generator().manual_seed(1))
    assert float((out - x).abs().mean()) > 0.005
    if "jpeg_prob" not in option:  # JPEG adds blocking edges; shrinking and blur remove them
        assert _edge_energy(out) < 0.9 * _edge_energy(x)


def test_gamma_above_one_darkens_and_probability_zero_leaves_faces_alone():
    from affectlens.training.augment import degrade

    x = _faces()
    dark = degrade(x, AugmentConfig(gamma_prob=1.0, gamma_range=(2.0, 2.0)))
    assert torch.allclose(dark, x.clamp(1e-4, 1) ** 2, atol=1e-6)
    half = degrade(x, AugmentConfig(lowres_prob=0.5, lowres_px=(8, 8)), torch.Generator().manual_seed(3))
    changed = [(half[i] - x[i]).abs().max().item() > 0 for i in range(len(x))]
    assert 0 < sum(changed) < len(x)


def test_video_degradation_settings_load_and_are_checked():
    cfg = load_config(None, ["augment.lowres_prob=0.3", "augment.lowres_px=14,20", "augment.jpeg_quality=20,60"])
    assert cfg.augment.lowres_prob == 0.3 and cfg.augment.lowres_px == (14.0, 20.0)
    with pytest.raises(ValueError, match="blur_prob"):
        load_config(None, ["augment.blur_prob=1.5"])
    with pytest.raises(ValueError, match="jpeg_quality"):
        load_config(None, ["augment.jpeg_quality=60,20"])
