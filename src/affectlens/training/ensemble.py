"""Average several trained runs into one exported model (and a teacher for distillation).

Each member is a run folder written by ``affectlens train`` (``config.json`` + ``best.pt``).
The ensemble averages the members' logits (weights fixed in advance or chosen on PublicTest,
never on PrivateTest), with each member's own input normalisation folded in, then gets the
same treatment as a single model: mirror TTA, a temperature fitted on PublicTest, ONNX export
with its spec, and scores of the exported file on the test splits.

Usage::

    python -m affectlens.training.ensemble --name fer-ens --runs runs/fer-vgg48s runs/fer-vgg48m \\
        --out runs/fer-ens [--weights 0.4,0.6 | --search-weights]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

import torch
from torch import nn

from affectlens.training.config import TrainConfig
from affectlens.training.nets import create_net

logger = logging.getLogger(__name__)


class LogitEnsemble(nn.Module):
    """Weighted mean of member logits. Input is normalised with ``(mean, std)``; each member
    gets it re-normalised with its own statistics."""

    def __init__(self, members: list[nn.Module], stats: list[tuple[float, float]], weights: list[float],
                 mean: float, std: float):
        super().__init__()
        if not (len(members) == len(stats) == len(weights)) or not members:
            raise ValueError("need as many stats and weights as members, and at least one member")
        total = float(sum(weights))
        if total <= 0 or min(weights) < 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.members = nn.ModuleList(members)
        self.mean, self.std = mean, std
        self.stats = [(float(m), float(s)) for m, s in stats]
        self.weights = [float(w) / total for w in weights]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raw = x * self.std + self.mean
        out = None
        for net, (m, s), w in zip(self.members, self.stats, self.weights):
            logits = net((raw - m) / s) * w
            out = logits if out is None else out + logits
        return out


def load_run(run_dir: str | Path, num_classes: int) -> tuple[nn.Module, TrainConfig, dict]:
    """The best checkpoint of a run as an eval-mode network, its config and checkpoint dict.

    Raises:
        FileNotFoundError: the run folder lacks ``config.json`` or ``best.pt``.
    """
    run = Path(run_dir)
    for f in ("config.json", "best.pt"):
        if not (run / f).is_file():
            raise FileNotFoundError(f"{run}: no {f} (not a finished training run?)")
    raw = json.loads((run / "config.json").read_text())
    known = {f.name for f in dataclasses.fields(TrainConfig)} - {"augment"}
    cfg = TrainConfig(**{k: v for k, v in raw.items() if k in known})
    best = torch.load(run / "best.pt", weights_only=False, map_location="cpu")
    net = create_net(cfg.arch, num_classes=num_classes, dropout=cfg.dropout)
    net.load_state_dict(best["model"])
    return net.eval(), cfg, best


def build_ensemble(runs: list[str | Path], data, weights: list[float] | None = None,
                   search_weights: bool = False) -> tuple[LogitEnsemble, dict]:
    """An ensemble of ``runs`` and a report of each member's and the ensemble's PublicTest
    accuracy (mirror TTA). With ``search_weights`` the weights are chosen on PublicTest from a
    grid (steps of 0.1); otherwise ``weights`` or equal weights."""
    from affectlens.training.train import _to_tensor, predict_logits

    members, stats, sizes, report = [], [], set(), {"members": []}
    x_pub = None
    y_pub = torch.from_numpy(data.splits["PublicTest"].labels)
    member_logits = []
    for run in runs:
        net, cfg, best = load_run(run, len(data.labels))
        sizes.add(cfg.input_size)
        if len(sizes) > 1:
            raise ValueError(f"members differ in input size ({sorted(sizes)}); not supported")
        x_pub = _to_tensor(data.splits["PublicTest"].images, cfg.input_size) if x_pub is None else x_pub
        logits = predict_logits(net, x_pub, best["mean"], best["std"], bf16=False, tta=True)
        acc = float((logits.argmax(1) == y_pub).float().mean())
        member_logits.append(logits)
        members.append(net)
        stats.append((best["mean"], best["std"]))
        report["members"].append({"run": str(run), "arch": cfg.arch, "best_epoch": int(best["epoch"]) + 1,
                                  "public_acc_tta": acc})
        logger.info("member %s: PublicTest %.4f", run, acc)
    if search_weights and len(runs) > 1:
        import itertools

        grid = [i / 10 for i in range(11)]
        best_w, best_acc = None, -1.0
        for w in itertools.product(grid, repeat=len(runs)):
            if abs(sum(w) - 1.0) > 1e-6:
                continue
            acc = float((sum(wi * li for wi, li in zip(w, member_logits)).argmax(1) == y_pub).float().mean())
            if acc > best_acc + 1e-9:
                best_w, best_acc = list(w), acc
        weights = best_w
    weights = weights or [1.0] * len(runs)
    ens_logits = sum(w * li for w, li in zip(weights, member_logits)) / sum(weights)
    report["weights"] = [w / sum(weights) for w in weights]
    report["public_acc_tta"] = float((ens_logits.argmax(1) == y_pub).float().mean())
    logger.info("ensemble weights %s: PublicTest %.4f", report["weights"], report["public_acc_tta"])
    mean, std = stats[0]
    return LogitEnsemble(members, stats, weights, mean, std).eval(), report


def main(argv: list[str] | None = None) -> int:
    from affectlens.training.data import load_training_data
    from affectlens.training.export import export_and_score

    ap = argparse.ArgumentParser(prog="python -m affectlens.training.ensemble", description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="model name (file stem)")
    ap.add_argument("--runs", nargs="+", required=True, help="training run folders (config.json + best.pt)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--weights", default=None, help="comma-separated member weights (default: equal)")
    ap.add_argument("--search-weights", action="store_true", help="choose weights on PublicTest (grid of 0.1)")
    ap.add_argument("--dataset", default=None, help="fer2013 or ferplus (default: the first run's)")
    ap.add_argument("--data", default=None, help="data folder (default: the first run's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    first = json.loads((Path(args.runs[0]) / "config.json").read_text())
    data = load_training_data(args.dataset or first.get("dataset", "fer2013"), args.data or first["data"])
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    ens, report = build_ensemble(args.runs, data, weights, args.search_weights)
    arches = " + ".join(m["arch"] for m in report["members"])
    training = {"data": f"{data.name} Training split; members selected on PublicTest, ensemble weights "
                        f"{'chosen on PublicTest' if args.search_weights else 'fixed'}",
                "arch": f"ensemble of {arches}", "members": report["members"], "weights": report["weights"],
                "command": f"python -m affectlens.training.ensemble --name {args.name} --runs "
                           f"{' '.join(args.runs)} --out <dir>" + (" --search-weights" if args.search_weights else "")}
    metrics = export_and_score(ens, args.name, Path(args.out), data, ens.mean, ens.std, int(first["input_size"]),
                               training, f"Logit-averaging ensemble of {arches} on 48x48 grayscale aligned faces, "
                                         "mirror TTA and temperature folded in.")
    print(json.dumps({k: v.get("accuracy") if isinstance(v, dict) else v for k, v in metrics.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
