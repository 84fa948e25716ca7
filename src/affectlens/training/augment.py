"""Batched GPU/CPU-friendly augmentation on ``(n, 1, h, w)`` float tensors in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass
class AugmentConfig:
    """Augmentation strengths (0 disables each).

    Attributes:
        max_rotation_deg: uniform rotation in ±degrees.
        scale_range: isotropic zoom factor range (1 = none).
        max_translate: uniform shift as a fraction of the side.
        hflip: probability of a horizontal flip.
        brightness / contrast: ± jitter factors.
        erase_prob: probability of random erasing of one rectangle (2–25 % of the area).
        mixup_alpha: Beta(α, α) parameter of mixup (blend two faces and their targets); 0 = off.
        cutmix_alpha: Beta(α, α) parameter of CutMix (paste a box of another face, targets
            mixed by area); 0 = off. With both on, each mixed batch uses one of the two at random.
        mix_prob: probability that a batch is mixed at all (when mixup or CutMix is on).
    """

    max_rotation_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    max_translate: float = 0.1
    hflip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    erase_prob: float = 0.5
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0

    @property
    def mixes(self) -> bool:
        """Whether :func:`mix_batch` can change a batch."""
        return (self.mixup_alpha > 0 or self.cutmix_alpha > 0) and self.mix_prob > 0


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random affine + flip + photometric jitter + random erasing, one draw per sample.

    The random numbers come from ``generator`` (a CPU generator) and move to ``x``'s device, so
    the same seed gives the same augmentation on CPU and GPU."""
    n, _, h, w = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator).to(dev)

    angle = (rand(n) * 2 - 1) * math.radians(cfg.max_rotation_deg)
    lo, hi = cfg.scale_range
    scale = lo + rand(n) * (hi - lo)
    flip = torch.where(rand(n) < cfg.hflip, -1.0, 1.0)
    tx = (rand(n) * 2 - 1) * cfg.max_translate * 2
    ty = (rand(n) * 2 - 1) * cfg.max_translate * 2
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos * flip, -sin, tx], dim=1),
        torch.stack([sin * flip, cos, ty], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    if cfg.brightness or cfg.contrast:
        b = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.brightness
        c = 1 + (rand(n, 1, 1, 1) * 2 - 1) * cfg.contrast
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = ((x - mean) * c + mean) * b
        x = x.clamp(0, 1)

    if cfg.erase_prob:
        area = (0.02 + rand(n) * 0.23) * h * w
        aspect = torch.exp((rand(n) * 2 - 1) * math.log(3))
        eh = (area * aspect).sqrt().clamp(1, h).long()
        ew = (area / aspect).sqrt().clamp(1, w).long()
        y0 = (rand(n) * (h - eh + 1).float()).long()
        x0 = (rand(n) * (w - ew + 1).float()).long()
        ys = torch.arange(h, device=dev).view(1, h, 1)
        xs = torch.arange(w, device=dev).view(1, 1, w)
        box = ((ys >= y0.view(n, 1, 1)) & (ys < (y0 + eh).view(n, 1, 1))
               & (xs >= x0.view(n, 1, 1)) & (xs < (x0 + ew).view(n, 1, 1)))
        box &= (rand(n) < cfg.erase_prob).view(n, 1, 1)
        noise = rand(n, 1, h, w)
        x = torch.where(box.unsqueeze(1), noise, x)
    return x


def mix_batch(x: torch.Tensor, target: torch.Tensor, num_classes: int, cfg: AugmentConfig,
              generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Mixup or CutMix of a batch with a shuffled copy of itself.

    Args:
        x: ``(n, c, h, w)`` images.
        target: ``(n,)`` class indices or ``(n, C)`` probabilities (soft / distillation targets).
        num_classes: ``C``.

    Returns:
        ``(x, probabilities (n, C), lam)``: ``lam`` is the weight of each sample's own target
        (1.0 when the batch was left alone, which is always the case when ``cfg.mixes`` is false).
    """
    probs = F.one_hot(target, num_classes).float() if target.ndim == 1 else target.float()
    if not cfg.mixes or torch.rand(1, generator=generator).item() >= cfg.mix_prob:
        return x, probs, 1.0
    n, _, h, w = x.shape
    perm = torch.randperm(n, generator=generator)
    cut = cfg.cutmix_alpha > 0 and (cfg.mixup_alpha <= 0 or torch.rand(1, generator=generator).item() < 0.5)
    alpha = cfg.cutmix_alpha if cut else cfg.mixup_alpha
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    if cut:
        ch, cw = round(h * math.sqrt(1 - lam)), round(w * math.sqrt(1 - lam))
        cy = int(torch.randint(0, h, (1,), generator=generator))
        cx = int(torch.randint(0, w, (1,), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy - ch // 2 + ch, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx - cw // 2 + cw, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)  # the area actually pasted
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * probs + (1 - lam) * probs[perm], lam
