"""Batched GPU/CPU-friendly augmentation on ``(n, 1, h, w)`` float tensors in [0, 1]."""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    """

    max_rotation_deg: float = 15.0
    scale_range: tuple[float, float] = (0.85, 1.15)
    max_translate: float = 0.1
    hflip: float = 0.5
    brightness: float = 0.25
    contrast: float = 0.25
    erase_prob: float = 0.5


def augment(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random affine + flip + photometric jitter + random erasing, one draw per sample."""
    n, _, h, w = x.shape
    dev = x.device

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=dev)

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
