"""Train the learned temporal smoother: a small GRU over per-frame classifier outputs.

``affectlens train-temporal [--config configs/temporal-gru.toml] [--resume] [--set key=value]``

1. **Data** (:mod:`affectlens.temporal.synth`): sequences built from FER-2013 / FER+ faces and
   scored by the real emotion classifier; cached in ``<out_dir>/seq-<split>.npz`` (git-ignored
   ``runs/``), so a rerun or ``--resume`` does not score them again. Training sequences use
   Training faces, model selection PublicTest faces, the evaluation PrivateTest faces only.
2. **Model**: per frame the input is the classifier's probabilities and the quality signals
   (detection score, face box width, yaw, pitch, time since the previous frame); a GRU cell
   (``hidden`` units) and a linear layer give the smoothed probabilities. Normalisation
   (log-probabilities, log face size, dt in seconds) is inside the exported graph.
3. **Training**: cross-entropy against the true per-frame label, plus ``switch_penalty`` times the
   mean L1 change of the output between consecutive frames (a flicker penalty), Adam, seeded;
   ``last.pt`` after every epoch (``--resume`` continues), ``best.pt`` by validation accuracy.
4. **Export**: ``<name>.onnx`` with explicit state (inputs ``x (n, C + 5)`` and ``h (n, hidden)``,
   outputs ``probs (n, C)`` and ``h_out (n, hidden)``), one step per frame for ``n`` tracks at
   once, and ``<name>.json`` beside it (labels, features, hidden size, sha256, recipe, metrics).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from affectlens.temporal.synth import FEATURES, SynthRecipe, make_sequences

logger = logging.getLogger(__name__)


@dataclass
class TemporalConfig:
    """Configuration of :func:`train_temporal` (a TOML file and ``--set key=value`` override it).

    Attributes:
        classifier: emotion model whose outputs the smoother learns (its labels become the smoother's).
        data: FER-2013 folder or ``fer2013.csv[.gz]`` (FER+ votes beside it for 8-label models).
        out_dir: run folder (cached sequences, checkpoints, exported model).
        name: file stem of the exported model.
        n_train / n_val / n_test: sequences from Training / PublicTest / PrivateTest faces.
        seed: seeds the sequences (``seed``, ``seed + 1``, ``seed + 2`` per split) and training.
        hidden: GRU units. epochs, lr, batch_size: optimisation.
        switch_penalty: weight of the mean L1 change of the smoothed probabilities between
            consecutive frames in the loss (0: plain cross-entropy); higher values flicker less
            and follow true changes later.
        threads: torch CPU threads (1: the model is tiny, more threads only contend).
    """

    classifier: str = "fer-vgg48s-int8"
    data: str = "../shared/data/fer2013"
    out_dir: str = "runs/temporal"
    name: str = "temporal-gru"
    n_train: int = 300
    n_val: int = 60
    n_test: int = 120
    seed: int = 0
    hidden: int = 32
    epochs: int = 40
    lr: float = 3e-3
    batch_size: int = 16
    switch_penalty: float = 0.0
    threads: int = 1
    recipe: SynthRecipe = field(default_factory=SynthRecipe)

    @classmethod
    def from_dict(cls, d: dict) -> "TemporalConfig":
        known = {f.name for f in fields(cls)}
        bad = sorted(set(d) - known)
        if bad:
            raise ValueError(f"unknown temporal config key(s) {bad}; expected some of {sorted(known)}")
        d = dict(d)
        if isinstance(d.get("recipe"), dict):
            d["recipe"] = SynthRecipe(**{k: tuple(v) if isinstance(v, list) else v for k, v in d["recipe"].items()})
        return cls(**d)


def load_temporal_config(path: str | Path | None = None, overrides: list[str] | None = None) -> TemporalConfig:
    """A TOML config (any subset of the fields, a ``[recipe]`` table) with ``key=value`` overrides.

    Raises:
        ValueError: unknown key or a value of the wrong type.
    """
    import tomllib

    raw: dict = {}
    if path is not None:
        with open(path, "rb") as fh:
            raw = tomllib.load(fh)
    defaults = TemporalConfig()
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not hasattr(defaults, key) or key == "recipe":
            raise ValueError(f"expected KEY=VALUE with KEY one of the temporal config fields, got {item!r}")
        kind = type(getattr(defaults, key))
        try:
            raw[key] = kind(value)
        except ValueError:
            raise ValueError(f"{key}: expected a {kind.__name__}, got {value!r}") from None
    return TemporalConfig.from_dict(raw)


SPLITS = {"train": ("Training", 0), "val": ("PublicTest", 1), "test": ("PrivateTest", 2)}


def labelled_faces(data: str, label_names: tuple[str, ...], split: str) -> tuple[np.ndarray, np.ndarray]:
    """Faces and labels (indices into ``label_names``) of a FER split, by label name.

    FER+ majority labels when the label set has ``contempt`` (8 labels), else FER-2013's.

    Raises:
        DatasetError: data missing; ValueError: a label the data sets do not have.
    """
    from affectlens.datasets.fer2013 import load_fer2013
    from affectlens.labels import EMOTIONS

    if "contempt" in label_names:
        from affectlens.datasets.ferplus import FERPLUS_EMOTIONS, load_ferplus
        d = load_ferplus(data, split)
        names, images, labels = FERPLUS_EMOTIONS, d.images, d.labels
    else:
        d = load_fer2013(data, (split,))[split]
        names, images, labels = EMOTIONS, d.images, d.labels
    missing = [n for n in label_names if n not in names]
    if missing:
        raise ValueError(f"labels {missing} of the classifier are not in the data's labels {names}")
    remap = np.array([label_names.index(n) if n in label_names else -1 for n in names])
    y = remap[labels]
    return images[y >= 0], y[y >= 0]


def load_or_make_sequences(cfg: TemporalConfig, classifier, split: str) -> dict[str, np.ndarray]:
    """The cached sequences of one split (``train``, ``val``, ``test``), generated on first use."""
    fer_split, offset = SPLITS[split]
    n = {"train": cfg.n_train, "val": cfg.n_val, "test": cfg.n_test}[split]
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    key = {"classifier": classifier.spec.name, "sha256": classifier.spec.sha256, "n": n, "seed": cfg.seed + offset,
           "split": fer_split, "recipe": cfg.recipe.to_dict()}
    path = out / f"seq-{split}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) == json.loads(json.dumps(key)):
                return {k: z[k] for k in ("probs", "feats", "y", "t_ms")}
        logger.info("%s: made with other settings; generating again", path)
    images, labels = labelled_faces(cfg.data, classifier.labels, fer_split)
    t0 = time.perf_counter()
    seqs = make_sequences(classifier, images, labels, classifier.labels, n, cfg.seed + offset, cfg.recipe)
    logger.info("%s: %d sequences in %.0f s", split, n, time.perf_counter() - t0)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, key=json.dumps(key), **seqs)
    tmp.replace(path)
    return seqs


# ----- model ---------------------------------------------------------------------------------
def _torch():
    import torch
    from torch import nn

    return torch, nn


def build_net(n_classes: int, hidden: int):
    """The GRU smoother as a torch module: ``forward(x (N, T, C + 5), h0 (1, N, H)) -> (probs, h)``."""
    torch, nn = _torch()

    class TemporalGRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.c, self.hidden = n_classes, hidden
            self.gru = nn.GRU(n_classes + len(FEATURES), hidden, batch_first=True)
            self.head = nn.Linear(hidden + n_classes, n_classes)

        def features(self, x):
            """Raw inputs (probabilities, det_score, face_px, yaw, pitch, dt_ms) -> normalised ones."""
            logp = torch.log(torch.clamp(x[..., :self.c], min=1e-4))
            det, px, yaw, pitch, dt = (x[..., self.c + i:self.c + i + 1] for i in range(5))
            return torch.cat([logp, (det - 0.9) * 10.0, torch.log(torch.clamp(px, min=8.0) / 80.0),
                              yaw * 2.0, pitch * 2.0, torch.clamp(dt, 0.0, 2000.0) / 100.0], -1), logp

        def forward(self, x, h0):
            z, logp = self.features(x)
            out, h = self.gru(z, h0)
            logits = self.head(torch.cat([out, logp], -1))
            return torch.softmax(logits, -1), h

    return TemporalGRU()


def _tensors(seqs: dict):
    torch, _ = _torch()
    x = np.concatenate([seqs["probs"], seqs["feats"]], -1).astype(np.float32)
    return torch.from_numpy(x), torch.from_numpy(seqs["y"])


def train_temporal(cfg: TemporalConfig, resume: bool = False) -> dict:
    """Generate (or load) the sequences, train, export ONNX + spec, evaluate; returns the metrics.

    Raises:
        DatasetError: FER data missing. ModelLoadError: the classifier cannot be loaded.
    """
    torch, nn = _torch()
    from affectlens.classifier import EmotionClassifier

    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    clf = EmotionClassifier(cfg.classifier)
    data = {s: load_or_make_sequences(cfg, clf, s) for s in ("train", "val", "test")}
    xtr, ytr = _tensors(data["train"])
    xva, yva = _tensors(data["val"])
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(max(1, cfg.threads))
    net = build_net(len(clf.labels), cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    start, best_acc, history = 0, -1.0, []
    last = out / "last.pt"
    if resume and last.exists():
        ck = torch.load(last, weights_only=False)
        net.load_state_dict(ck["model"]), opt.load_state_dict(ck["opt"]), sched.load_state_dict(ck["sched"])
        start, best_acc, history = ck["epoch"] + 1, ck["best_acc"], ck["history"]
        torch.set_rng_state(ck["rng"])
        logger.info("resuming at epoch %d", start + 1)
    h0 = torch.zeros(1, len(xtr), cfg.hidden)
    t0 = time.perf_counter()
    for epoch in range(start, cfg.epochs):
        net.train()
        perm = torch.randperm(len(xtr))
        total = 0.0
        for i in range(0, len(xtr), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            probs, _ = net(xtr[idx], h0[:, :len(idx)])
            loss = nn.functional.nll_loss(torch.log(probs.clamp_min(1e-7)).flatten(0, 1), ytr[idx].flatten())
            if cfg.switch_penalty > 0:
                loss = loss + cfg.switch_penalty * (probs[:, 1:] - probs[:, :-1]).abs().sum(-1).mean()
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            total += float(loss.detach()) * len(idx)
        sched.step()
        net.eval()
        with torch.no_grad():
            pv, _ = net(xva, torch.zeros(1, len(xva), cfg.hidden))
        acc = float((pv.argmax(-1) == yva).float().mean())
        history.append({"epoch": epoch + 1, "loss": round(total / len(xtr), 4), "val_accuracy": round(acc, 4)})
        logger.info("epoch %d loss %.4f val acc %.4f", epoch + 1, total / len(xtr), acc)
        if acc > best_acc:
            best_acc = acc
            torch.save({"model": net.state_dict(), "epoch": epoch}, out / "best.pt")
        torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "epoch": epoch,
                    "best_acc": best_acc, "history": history, "rng": torch.get_rng_state()}, last)
    train_s = time.perf_counter() - t0
    net.load_state_dict(torch.load(out / "best.pt", weights_only=False)["model"])
    onnx_path = export_temporal(net, cfg, clf, out, history, train_s)
    return {"model": str(onnx_path), "best_val_accuracy": best_acc, "history": history}


class _Step:
    """Wraps the trained net as one streaming step with explicit state (for ONNX export)."""

    def __new__(cls, net):
        torch, nn = _torch()

        class Step(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = net

            def forward(self, x, h):
                probs, h_out = self.net(x[:, None], h[None])
                return probs[:, 0], h_out[0]

        return Step().eval()


def export_temporal(net, cfg: TemporalConfig, clf, out: Path, history: list, train_s: float) -> Path:
    """Write ``<name>.onnx`` (one streaming step, explicit state) and ``<name>.json`` beside it."""
    torch, _ = _torch()
    from affectlens.models.spec import sha256_of

    c = len(clf.labels)
    path = out / f"{cfg.name}.onnx"
    step = _Step(net.eval())
    x = torch.zeros(2, c + len(FEATURES))
    h = torch.zeros(2, cfg.hidden)
    torch.onnx.export(step, (x, h), str(path), input_names=["x", "h"], output_names=["probs", "h_out"],
                      dynamic_axes={"x": {0: "n"}, "h": {0: "n"}, "probs": {0: "n"}, "h_out": {0: "n"}},
                      opset_version=17, dynamo=False)
    spec = {"name": cfg.name, "kind": "temporal-smoother", "file": path.name, "sha256": sha256_of(path),
            "labels": list(clf.labels), "features": list(FEATURES), "hidden": cfg.hidden,
            "inputs": {"x": f"(n, {c} + {len(FEATURES)}): the classifier's probabilities in label order, then "
                            + ", ".join(FEATURES) + " (dt_ms: time since the track's previous frame, 0 on its first)",
                       "h": f"(n, {cfg.hidden}) state of each track, zeros for a new track"},
            "outputs": {"probs": f"(n, {c}) smoothed probabilities", "h_out": "the state to pass with the next frame"},
            "classifier": {"name": clf.spec.name, "sha256": clf.spec.sha256},
            "recipe": cfg.recipe.to_dict(),
            "training": {"config": {k: v for k, v in asdict(cfg).items() if k != "recipe"},
                         "face_labels": ("FER+ majority vote (fer2013new.csv)" if "contempt" in clf.labels
                                         else "FER-2013 labels"),
                         "sequences": {"train": f"{cfg.n_train} from FER-2013 Training faces",
                                       "val": f"{cfg.n_val} from PublicTest faces (model selection)",
                                       "test": f"{cfg.n_test} from PrivateTest faces (evaluation only)"},
                         "seconds": round(train_s, 1), "history": history[-5:],
                         "command": f"affectlens train-temporal --config configs/{cfg.name}.toml"},
            "metrics": {}}
    (out / f"{cfg.name}.json").write_text(json.dumps(spec, indent=2) + "\n")
    logger.info("wrote %s and its spec", path)
    return path
