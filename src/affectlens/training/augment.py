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
        lowres_prob: probability that a face is shrunk to ``lowres_px`` pixels (a side drawn
            uniformly in that range, area-averaged) and scaled back up (bilinear): the small,
            soft faces of crowd video and far-away people.
        lowres_px: ``(smallest, largest)`` side of the shrunk face in pixels.
        blur_prob: probability of a linear motion blur (a line kernel at a random angle).
        blur_max_px: the longest blur line in pixels (its length is drawn from 2 to this).
        jpeg_prob: probability of a JPEG round trip (compression artefacts of video and web photos).
        jpeg_quality: ``(lowest, highest)`` JPEG quality drawn uniformly.
        gamma_prob: probability of a gamma change (dim or washed-out light).
        gamma_range: ``(low, high)`` gamma, drawn log-uniformly; ``x ** gamma``, so > 1 darkens.
        noise_std: standard deviation of additive Gaussian sensor noise drawn per face from
            0 to this (in [0, 1] pixel units); 0 = off.

    The video degradations (``lowres``, ``blur``, ``jpeg``, ``gamma``, ``noise``) run after the
    affine and photometric jitter and before random erasing; all are off by default.
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
    lowres_prob: float = 0.0
    lowres_px: tuple[float, float] = (12.0, 24.0)
    blur_prob: float = 0.0
    blur_max_px: float = 5.0
    jpeg_prob: float = 0.0
    jpeg_quality: tuple[float, float] = (20.0, 60.0)
    gamma_prob: float = 0.0
    gamma_range: tuple[float, float] = (0.6, 2.2)
    noise_std: float = 0.0

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

    x = degrade(x, cfg, generator)

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


def degrade(x: torch.Tensor, cfg: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """What real video does to a face, one draw per sample: low resolution, motion blur, dim or
    bright light (gamma), sensor noise, JPEG compression (in that order; each off at 0).

    Args:
        x: ``(n, c, h, w)`` images in [0, 1].
        cfg: the strengths (``lowres_*``, ``blur_*``, ``gamma_*``, ``noise_std``, ``jpeg_*``).
        generator: CPU generator for every random draw (reproducible on any device).

    Returns:
        A tensor of the same shape, in [0, 1].
    """
    n = x.shape[0]
    if cfg.lowres_prob:
        x = _lowres(x, cfg, generator)
    if cfg.blur_prob:
        x = _motion_blur(x, cfg, generator)
    if cfg.gamma_prob:
        lo, hi = math.log(cfg.gamma_range[0]), math.log(cfg.gamma_range[1])
        g = torch.exp(lo + torch.rand(n, generator=generator) * (hi - lo))
        g = torch.where(torch.rand(n, generator=generator) < cfg.gamma_prob, g, torch.ones(n))
        x = x.clamp(1e-4, 1).pow(g.to(x.device).view(n, 1, 1, 1))
    if cfg.noise_std:
        sd = torch.rand(n, 1, 1, 1, generator=generator) * cfg.noise_std
        x = (x + sd.to(x.device) * torch.randn(x.shape, generator=generator).to(x.device)).clamp(0, 1)
    if cfg.jpeg_prob:
        x = _jpeg(x, cfg, generator)
    return x


def _chosen(n: int, p: float, generator) -> list[int]:
    return torch.nonzero(torch.rand(n, generator=generator) < p).flatten().tolist()


def _lowres(x: torch.Tensor, cfg: AugmentConfig, generator) -> torch.Tensor:
    n, _, h, w = x.shape
    sides = cfg.lowres_px[0] + torch.rand(n, generator=generator) * (cfg.lowres_px[1] - cfg.lowres_px[0])
    idx = _chosen(n, cfg.lowres_prob, generator)
    if not idx:
        return x
    x = x.clone()
    for i in idx:
        s = max(2, min(h, int(round(float(sides[i])))))
        small = F.interpolate(x[i:i + 1], size=(s, max(2, round(s * w / h))), mode="area")
        x[i:i + 1] = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    return x


def _motion_blur(x: torch.Tensor, cfg: AugmentConfig, generator) -> torch.Tensor:
    n, c, h, w = x.shape
    k = max(3, int(math.ceil(cfg.blur_max_px)) | 1)
    length = 2 + torch.rand(n, generator=generator) * max(0.0, cfg.blur_max_px - 2)
    angle = torch.rand(n, generator=generator) * math.pi
    on = torch.rand(n, generator=generator) < cfg.blur_prob
    r = torch.arange(k, dtype=torch.float32) - k // 2
    yy, xx = torch.meshgrid(r, r, indexing="ij")
    # distance of each kernel cell from the line through the centre, and position along it
    cos, sin = torch.cos(angle).view(n, 1, 1), torch.sin(angle).view(n, 1, 1)
    across = (xx * sin - yy * cos).abs()
    along = (xx * cos + yy * sin).abs()
    kern = (1 - across).clamp(min=0) * (along <= length.view(n, 1, 1) / 2).float()
    centre = torch.zeros(k, k)
    centre[k // 2, k // 2] = 1.0
    kern = torch.where(on.view(n, 1, 1), kern, centre)
    kern = kern / kern.sum(dim=(1, 2), keepdim=True)
    kern = kern.repeat_interleave(c, 0).unsqueeze(1).to(x.device)  # (n*c, 1, k, k)
    padded = F.pad(x.reshape(1, n * c, h, w), (k // 2,) * 4, mode="replicate")
    return F.conv2d(padded, kern, groups=n * c).reshape(n, c, h, w)


def _jpeg(x: torch.Tensor, cfg: AugmentConfig, generator) -> torch.Tensor:
    import cv2

    n = x.shape[0]
    lo, hi = cfg.jpeg_quality
    quality = lo + torch.rand(n, generator=generator) * (hi - lo)
    idx = _chosen(n, cfg.jpeg_prob, generator)
    if not idx:
        return x
    x = x.clone()
    for i in idx:
        img = (x[i].detach().cpu().permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(round(float(quality[i])))])
        dec = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        dec = dec.reshape(img.shape).astype(np.float32) / 255.0
        x[i] = torch.from_numpy(dec).permute(2, 0, 1).to(x.device)
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
