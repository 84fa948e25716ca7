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
