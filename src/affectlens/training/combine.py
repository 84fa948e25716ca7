"""Combine exported models (``.onnx`` + spec JSON) into one ensemble ONNX, without their
training checkpoints.

Where :mod:`affectlens.training.ensemble` needs the members' run folders, this works on the
deployed files alone, e.g. a shipped model plus a newly trained one. Each member already folds
in its mirror TTA and temperature; the combined graph takes the weighted mean of the members'
log-probabilities (the same ranking as averaging their temperature-scaled logits), applies one
new temperature fitted on PublicTest, and ends in a softmax. Weights are fixed in advance or
chosen on PublicTest, never on PrivateTest. Members whose input normalisation differs get the
input re-normalised inside the graph.

Zoom views (``--zoom 1.1``) add test-time augmentation on top of the members' mirror: each
face is also seen enlarged about its centre (bilinear, as two fixed matrix products in the
graph), all views run as one batch, and the log-probabilities are averaged over views. Each
view costs one more pass of every member.

Usage::

    python -m affectlens.training.combine --name fer-ens --models a.onnx b.onnx --out runs/fer-ens \\
        [--weights 0.4,0.6 | --search-weights] [--zoom 1.1] [--data ../shared/data/fer2013]
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
from pathlib import Path

import numpy as np

from affectlens.errors import ModelLoadError
from affectlens.models.spec import ModelSpec, sha256_of
from affectlens.preprocess import to_model_input

logger = logging.getLogger(__name__)

_EPS = 1e-12
DEFAULT_DATA = "../shared/data/fer2013"


def load_member(path: str | Path) -> tuple[ModelSpec, "object"]:
    """A member's spec and ONNX model (a shipped name or an ``.onnx`` / spec path), checked
    against the spec's sha256.

    Raises:
        ModelLoadError: the file or its spec is missing, damaged or does not output probabilities.
    """
    import onnx

    from affectlens.models.registry import resolve_spec
    from affectlens.models.spec import verify_model_file

    spec = resolve_spec(path)
    path = verify_model_file(spec)
    if spec.output_kind != "probabilities":
        raise ModelLoadError(f"{path}: output kind {spec.output_kind!r}; only probability outputs can be combined")
    return spec, onnx.load(str(path))


def _check_compatible(specs: list[ModelSpec], paths: list[Path]) -> None:
    first = specs[0]
    for spec, path in zip(specs[1:], paths[1:]):
        if tuple(spec.labels) != tuple(first.labels):
            raise ModelLoadError(f"{path}: labels {list(spec.labels)} differ from {paths[0].name}'s "
                                 f"{list(first.labels)}")
        if (tuple(spec.input.size_hw), spec.input.color, spec.input.layout) != \
                (tuple(first.input.size_hw), first.input.color, first.input.layout):
            raise ModelLoadError(f"{path}: input {spec.input.size_hw} {spec.input.color} differs from "
                                 f"{paths[0].name}'s {first.input.size_hw} {first.input.color}")
        if abs(spec.input.scale - first.input.scale) > 1e-9:
            raise ModelLoadError(f"{path}: input scale {spec.input.scale} differs from {first.input.scale}")


def zoom_matrix(n: int, factor: float) -> np.ndarray:
    """``(n, n)`` bilinear resampling matrix that enlarges a 1-D signal of ``n`` pixels by
    ``factor`` (>= 1) about its centre: ``out = A @ signal``. An image is zoomed by
    ``A_h @ img @ A_w.T``; with ``factor >= 1`` every sample lies inside the image.

    Raises:
        ValueError: ``factor < 1`` (zooming out would need a border rule).
    """
    if factor < 1:
        raise ValueError(f"zoom factor must be >= 1, got {factor}")
    c = (n - 1) / 2
    u = (np.arange(n) - c) / factor + c           # source coordinate of each output pixel
    lo = np.clip(np.floor(u).astype(int), 0, n - 1)
    hi = np.minimum(lo + 1, n - 1)
    frac = (u - lo).astype(np.float64)
    a = np.zeros((n, n), np.float64)
    a[np.arange(n), lo] += 1 - frac
    a[np.arange(n), hi] += frac
    return a.astype(np.float32)


def zoom_images(x: np.ndarray, factor: float) -> np.ndarray:
    """``(..., H, W)`` images enlarged by ``factor`` about their centre, exactly as the
    combined graph's zoom view does it."""
    a_h, a_w = zoom_matrix(x.shape[-2], factor), zoom_matrix(x.shape[-1], factor)
    return (a_h @ x.astype(np.float32) @ a_w.T).astype(np.float32)


def _zoom_nodes(zooms: tuple[float, ...], size_hw) -> tuple[list, list, str]:
    """Nodes stacking the input and its zoomed views along the batch axis (``views`` tensor)."""
    from onnx import helper, numpy_helper

    nodes, inits, views = [], [], ["input"]
    for k, z in enumerate(zooms):
        inits += [numpy_helper.from_array(zoom_matrix(size_hw[0], z), f"zoom{k}/a_h"),
                  numpy_helper.from_array(zoom_matrix(size_hw[1], z).T.copy(), f"zoom{k}/a_wt")]
        nodes += [helper.make_node("MatMul", [f"zoom{k}/a_h", "input"], [f"zoom{k}/rows"]),
                  helper.make_node("MatMul", [f"zoom{k}/rows", f"zoom{k}/a_wt"], [f"zoom{k}/view"])]
        views.append(f"zoom{k}/view")
    nodes.append(helper.make_node("Concat", views, ["views"], axis=0))
    return nodes, inits, "views"


def combine_graph(members: list[tuple[ModelSpec, "object"]], weights: list[float], temperature: float = 1.0,
                  zooms: tuple[float, ...] = ()):
    """One ONNX model: ``softmax(sum_i w_i * log p_i / temperature)`` over the members, fed the
    first member's normalised input. Weights are normalised to sum to 1. With ``zooms``,
    ``log p_i`` is the mean over the face and its zoomed views (see :func:`zoom_matrix`).

    Raises:
        ValueError: weights do not match the members, are negative or sum to 0; temperature <= 0;
            a zoom factor below 1.
        ModelLoadError: members disagree on labels or input geometry.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    if len(weights) != len(members) or not members:
        raise ValueError(f"need one weight per member, got {len(weights)} for {len(members)}")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    specs = [s for s, _ in members]
    _check_compatible(specs, [Path(s.file) for s in specs])
    ref = specs[0].input
    nodes, inits, opsets = [], [], {}
    ref_in = members[0][1].graph.input[0]
    source = "input"
    if zooms:
        nodes, inits, source = _zoom_nodes(tuple(zooms), ref.size_hw)
    out_terms = []
    for i, ((spec, model), w) in enumerate(zip(members, weights)):
        if w == 0:
            continue
        prefix = f"m{i}/"
        m = onnx.compose.add_prefix(model, prefix)
        for op in m.opset_import:
            opsets[op.domain] = max(opsets.get(op.domain, 0), op.version)
        x = source
        mean, std = spec.input.mean, spec.input.std
        if tuple(mean) != tuple(ref.mean) or tuple(std) != tuple(ref.std):
            # raw = x * std_ref + mean_ref; member input = (raw - mean_i) / std_i
            a = np.array(ref.std, np.float32) / np.array(std, np.float32)
            b = (np.array(ref.mean, np.float32) - np.array(mean, np.float32)) / np.array(std, np.float32)
            shape = (1, len(a), 1, 1)
            inits += [numpy_helper.from_array(a.reshape(shape), f"{prefix}renorm_a"),
                      numpy_helper.from_array(b.reshape(shape), f"{prefix}renorm_b")]
            nodes += [helper.make_node("Mul", [source, f"{prefix}renorm_a"], [f"{prefix}scaled"]),
                      helper.make_node("Add", [f"{prefix}scaled", f"{prefix}renorm_b"], [f"{prefix}renormed"])]
            x = f"{prefix}renormed"
        nodes.append(helper.make_node("Identity", [x], [m.graph.input[0].name]))
        nodes += list(m.graph.node)
        inits += list(m.graph.initializer)
        out = [o.name for o in m.graph.output if o.name == prefix + spec.output_name]
        if not out:
            raise ModelLoadError(f"{spec.file}: no output named {spec.output_name!r}")
        inits += [numpy_helper.from_array(np.array(_EPS, np.float32), f"{prefix}eps"),
                  numpy_helper.from_array(np.array(w / total, np.float32), f"{prefix}w")]
        nodes += [helper.make_node("Max", [out[0], f"{prefix}eps"], [f"{prefix}clipped"]),
                  helper.make_node("Log", [f"{prefix}clipped"], [f"{prefix}logp"]),
                  helper.make_node("Mul", [f"{prefix}logp", f"{prefix}w"], [f"{prefix}term"])]
        out_terms.append(f"{prefix}term")
    n_cls = len(specs[0].labels)
    inits.append(numpy_helper.from_array(np.array(1.0 / temperature, np.float32), "inv_t"))
    nodes.append(helper.make_node("Sum", out_terms, ["mean_logp"]))
    if zooms:  # (views * batch, C) -> (views, batch * C) -> mean over views -> (batch, C)
        v = len(zooms) + 1
        inits += [numpy_helper.from_array(np.array([v, -1], np.int64), "by_view"),
                  numpy_helper.from_array(np.full((1, v), 1.0 / v, np.float32), "view_mean"),
                  numpy_helper.from_array(np.array([-1, n_cls], np.int64), "by_face")]
        nodes += [helper.make_node("Reshape", ["mean_logp", "by_view"], ["logp_by_view"]),
                  helper.make_node("MatMul", ["view_mean", "logp_by_view"], ["view_mean_flat"]),
                  helper.make_node("Reshape", ["view_mean_flat", "by_face"], ["view_mean_logp"])]
    nodes += [helper.make_node("Mul", ["view_mean_logp" if zooms else "mean_logp", "inv_t"], ["scaled_logp"]),
              helper.make_node("Softmax", ["scaled_logp"], ["probs"], axis=1)]
    graph = helper.make_graph(
        nodes, "affectlens_combined",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *[d.dim_value or d.dim_param for d in
                                                                               ref_in.type.tensor_type.shape.dim[1:]]])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", n_cls])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(opsets.items())],
                              producer_name="affectlens.training.combine")
    model.ir_version = max(m.ir_version for _, m in members)
    onnx.checker.check_model(model)
    return model


def _member_logprobs(model, spec: ModelSpec, images: np.ndarray, zooms: tuple[float, ...] = (),
                     batch: int = 512) -> np.ndarray:
    """A member's log-probabilities on ``images``, averaged over the face and its zoomed views."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = to_model_input(images, spec.input)
    name = sess.get_inputs()[0].name
    views = []
    for view in [x] + [zoom_images(x, z) for z in zooms]:
        p = np.concatenate([sess.run([spec.output_name], {name: view[i:i + batch]})[0]
                            for i in range(0, len(view), batch)])
        views.append(np.log(np.maximum(p, _EPS)))
    return np.mean(views, axis=0)


def fit_temperature_np(logits: np.ndarray, labels: np.ndarray, lo: float = 0.05, hi: float = 10.0) -> float:
    """The temperature minimising the mean negative log-likelihood of ``softmax(logits / T)``
    (golden-section search on log T)."""
    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(1, keepdims=True)
        return float((np.log(np.exp(z).sum(1)) - z[np.arange(len(z)), labels]).mean())

    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if nll(c) < nll(d):
            b = d
        else:
            a = c
        c, d = b - g * (b - a), a + g * (b - a)
    return float(np.exp((a + b) / 2))


def search_weights(member_logp: list[np.ndarray], labels: np.ndarray, step: float = 0.1) -> list[float]:
    """Grid weights (summing to 1, in ``step``s) with the best accuracy; ties keep the earliest,
    so equal accuracy never favours a lopsided mix over the grid's first best."""
    n = round(1 / step)
    best_w, best_acc = None, -1.0
    for k in itertools.product(range(n + 1), repeat=len(member_logp)):
        if sum(k) != n:
            continue
        w = [ki / n for ki in k]
        acc = float((sum(wi * lp for wi, lp in zip(w, member_logp)).argmax(1) == labels).mean())
        if acc > best_acc + 1e-9:
            best_w, best_acc = w, acc
    return best_w


def combine_and_score(paths: list[str | Path], name: str, out: str | Path, data, weights: list[float] | None = None,
                      search: bool = False, zooms: tuple[float, ...] = (), data_path: str | None = None) -> dict:
    """Combine ``paths`` into ``out/name.onnx`` with its spec, temperature and weights fitted on
    PublicTest, scored on both test splits; writes and returns ``metrics.json``. ``zooms`` adds
    zoomed test-time views (see :func:`combine_graph`); ``data_path`` (where ``data`` was read
    from) goes into the recorded command when it is not the default.

    Raises:
        ModelLoadError: a member cannot be read or the members are incompatible.
        ValueError: a zoom factor below 1 (from :func:`zoom_matrix`, before any scoring).
    """
    from affectlens.metrics import expected_calibration_error
    from affectlens.training.export import score_onnx

    paths = [Path(p) for p in paths]
    members = [load_member(p) for p in paths]
    specs = [s for s, _ in members]
    _check_compatible(specs, paths)
    if tuple(specs[0].labels) != tuple(data.labels):
        raise ModelLoadError(f"{paths[0]}: labels {list(specs[0].labels)} differ from the data's {list(data.labels)}")
    pub = data.splits["PublicTest"]
    zooms = tuple(float(z) for z in zooms)
    logp = [_member_logprobs(m, s, pub.images, zooms) for s, m in members]
    report = [{"model": str(p), "name": s.name, "public_acc": float((lp.argmax(1) == pub.labels).mean())}
              for p, s, lp in zip(paths, specs, logp)]
    for r in report:
        logger.info("member %s: PublicTest %.4f", r["model"], r["public_acc"])
    if search and len(paths) > 1:
        weights = search_weights(logp, pub.labels)
    weights = weights or [1.0] * len(paths)
    weights = [w / sum(weights) for w in weights]
    mixed = sum(w * lp for w, lp in zip(weights, logp))
    temperature = fit_temperature_np(mixed, pub.labels)
    logger.info("weights %s, temperature %.3f: PublicTest %.4f", weights, temperature,
                float((mixed.argmax(1) == pub.labels).mean()))
    model = combine_graph(members, weights, temperature, zooms)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / f"{name}.onnx"
    onnx_path.write_bytes(model.SerializeToString())
    tta = tuple(sorted(set.intersection(*[set(s.tta) for s in specs]))) + tuple(f"zoom{z:g}" for z in zooms)
    first = specs[0].to_dict()
    training = {"data": f"{data.name} Training split; members selected on PublicTest, ensemble weights "
                        f"{'chosen on PublicTest' if search else 'fixed'}, temperature fitted on PublicTest",
                "arch": "ensemble of " + " + ".join(str(s.training.get("arch", s.name)) for s in specs),
                "members": report, "weights": weights,
                "command": f"python -m affectlens.training.combine --name {name} --models "
                           f"{' '.join(str(p) for p in paths)} --out <dir>" + (" --search-weights" if search else "")
                           + (" --zoom " + " ".join(f"{z:g}" for z in zooms) if zooms else "")
                           + ("" if data.metric_prefix == "fer2013" else f" --dataset {data.metric_prefix}")
                           + (f" --data {data_path}" if data_path and data_path != DEFAULT_DATA else "")}
    spec = ModelSpec(**{**first, "name": name, "file": onnx_path.name, "sha256": sha256_of(onnx_path),
                        "input": specs[0].input, "alignment": specs[0].alignment, "output_name": "probs",
                        "output_kind": "probabilities", "temperature": temperature, "tta": tta,
                        "metrics": {}, "training": training,
                        "description": f"Log-probability-averaging ensemble of {', '.join(s.name for s in specs)} "
                                       "(each with its mirror TTA" + "".join(f", zoom x{z:g}" for z in zooms)
                                       + "), one temperature folded in."})
    metrics = score_onnx(spec, onnx_path, data)
    metrics["ece_public_before_temperature"] = expected_calibration_error(
        np.exp(mixed - np.log(np.exp(mixed).sum(1, keepdims=True))), pub.labels)
    spec = ModelSpec(**{**spec.to_dict(), "metrics": metrics, "input": spec.input, "alignment": spec.alignment})
    spec.save(out / f"{name}.json")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return metrics


def main(argv: list[str] | None = None) -> int:
    from affectlens.training.data import load_training_data

    ap = argparse.ArgumentParser(prog="python -m affectlens.training.combine", description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True, help="model name (file stem)")
    ap.add_argument("--models", nargs="+", required=True, help="exported models (.onnx with spec JSON beside)")
    ap.add_argument("--out", required=True, help="output folder")
    ap.add_argument("--weights", default=None, help="comma-separated member weights (default: equal)")
    ap.add_argument("--search-weights", action="store_true", help="choose weights on PublicTest (grid of 0.1)")
    ap.add_argument("--zoom", nargs="*", type=float, default=[],
                    help="test-time zoom views, e.g. 1.1 (each costs one more pass of every member)")
    ap.add_argument("--dataset", default="fer2013", help="fer2013 or ferplus")
    ap.add_argument("--data", default=DEFAULT_DATA, help="data folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:%(name)s:%(message)s")
    data = load_training_data(args.dataset, args.data)
    weights = [float(w) for w in args.weights.split(",")] if args.weights else None
    metrics = combine_and_score(args.models, args.name, args.out, data, weights, args.search_weights, tuple(args.zoom),
                                args.data)
    print(json.dumps({k: v.get("accuracy") if isinstance(v, dict) else v for k, v in metrics.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
