/**
 * Model specs: the JSON written beside every ONNX file by the Python library
 * (src/affectlens/models/spec.py). Every preprocessing constant is read from it at run time.
 */
import { ModelLoadError } from "./errors.js";

export interface InputSpec {
  name: string;
  size_hw: [number, number];
  color: "gray" | "rgb" | "bgr";
  scale: number;
  mean: number[];
  std: number[];
  layout: "NCHW";
  /** Written by `affectlens export` (1 for gray, 3 for rgb/bgr); checked against `color`. */
  channels?: number;
}

/** Thresholds an exported bundle's spec carries (the Python library's defaults at export time). */
export interface SpecThresholds {
  /** Faces whose quality is below this read "unreliable". */
  min_quality?: number;
  /** Face detector options (Python's names). */
  detector?: { min_score?: number; nms_iou?: number; max_side_px?: number; coarse_side_px?: number };
}

export interface AlignmentSpec {
  /** Five (x, y) template points as fractions of the crop width and height. */
  points_norm: [number, number][];
  source?: string;
  /** Roll (degrees, in [0, 90)) the alignment leaves in place; absent = 0 = full alignment. */
  roll_dead_band_deg?: number;
}

export interface ModelSpec {
  name: string;
  file: string;
  sha256: string;
  labels: string[];
  input: InputSpec;
  alignment: AlignmentSpec;
  output_name: string;
  output_kind: "probabilities" | "logits";
  temperature?: number;
  tta?: string[];
  metrics?: Record<string, unknown>;
  description?: string;
  license?: string;
  format_version?: number;
  /** Bundle specs: detection and quality thresholds. */
  thresholds?: SpecThresholds;
  /** Bundle specs: `#rrggbb` per label (labels outside the project palette get a deterministic colour). */
  palette?: Record<string, string>;
  /** Bundle specs: the file and sha256 the exported file was made from. */
  exported_from?: { file: string; sha256: string; format: string };
}

/** Number of input channels the spec's colour implies. */
export function channelsOf(spec: ModelSpec): number {
  return spec.input.color === "gray" ? 1 : 3;
}

/**
 * Validate a parsed spec JSON (the same checks as Python's `load_spec`).
 *
 * @param raw parsed JSON.
 * @param where the file or URL it came from, for error messages.
 * @throws ModelLoadError missing or malformed fields.
 */
export function parseSpec(raw: unknown, where: string): ModelSpec {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new ModelLoadError(`${where}: expected a JSON object as model spec, got ${Array.isArray(raw) ? "array" : typeof raw}`);
  }
  const d = raw as Record<string, any>;
  for (const key of ["name", "file", "sha256", "labels", "input", "alignment"]) {
    if (!(key in d)) throw new ModelLoadError(`${where}: model spec lacks the field '${key}'`);
  }
  const inp = d.input;
  const ok =
    inp && typeof inp.name === "string" && Array.isArray(inp.size_hw) && inp.size_hw.length === 2 &&
    typeof inp.scale === "number" && Array.isArray(inp.mean) && Array.isArray(inp.std);
  if (!ok) throw new ModelLoadError(`${where}: malformed input section of the model spec`);
  if (!["gray", "rgb", "bgr"].includes(inp.color)) {
    throw new ModelLoadError(`${where}: input.color must be gray, rgb or bgr, got '${inp.color}'`);
  }
  const channels = inp.color === "gray" ? 1 : 3;
  if (inp.mean.length !== channels || inp.std.length !== channels) {
    throw new ModelLoadError(`${where}: input.mean/std need ${channels} values for color '${inp.color}'`);
  }
  if ((inp.layout ?? "NCHW") !== "NCHW") {
    throw new ModelLoadError(`${where}: unsupported input layout '${inp.layout}'; the SDK feeds NCHW float32: ` +
      "export the network with an NCHW input (affectlens export checks this)");
  }
  if (inp.channels !== undefined && inp.channels !== channels) {
    throw new ModelLoadError(`${where}: input.channels is ${inp.channels}, but color '${inp.color}' means ${channels}`);
  }
  const pts = d.alignment?.points_norm;
  if (!Array.isArray(pts) || pts.length !== 5 || pts.some((p: unknown) => !Array.isArray(p) || p.length !== 2)) {
    throw new ModelLoadError(`${where}: alignment.points_norm must hold 5 (x, y) pairs`);
  }
  const band = d.alignment.roll_dead_band_deg ?? 0;
  if (typeof band !== "number" || !(band >= 0 && band < 90)) {
    throw new ModelLoadError(`${where}: alignment.roll_dead_band_deg must be a number of degrees in [0, 90), got ` +
      `${JSON.stringify(band)}; write e.g. 15 (the roll a model trained on unaligned crops keeps), or 0 / leave it out to align fully`);
  }
  if (!Array.isArray(d.labels) || d.labels.length < 2) {
    throw new ModelLoadError(`${where}: labels must list at least 2 class names`);
  }
  checkBundleFields(d, where);
  const kind = d.output_kind ?? "probabilities";
  if (kind !== "probabilities" && kind !== "logits") {
    throw new ModelLoadError(`${where}: output_kind must be probabilities or logits, got '${kind}'`);
  }
  return {
    ...d,
    input: { ...inp, layout: "NCHW" },
    alignment: { ...d.alignment, roll_dead_band_deg: band },
    output_name: d.output_name ?? "probs",
    output_kind: kind,
  } as ModelSpec;
}

/** The fields `affectlens export` adds: thresholds in range, a colour string per palette entry. */
function checkBundleFields(d: Record<string, any>, where: string): void {
  const t = d.thresholds;
  if (t !== undefined) {
    const q = t?.min_quality;
    if (q !== undefined && !(typeof q === "number" && q >= 0 && q <= 1)) {
      throw new ModelLoadError(`${where}: thresholds.min_quality must be a number in [0, 1], got ${JSON.stringify(q)}`);
    }
    for (const [k, v] of Object.entries(t?.detector ?? {})) {
      if (typeof v !== "number") throw new ModelLoadError(`${where}: thresholds.detector.${k} must be a number, got ${JSON.stringify(v)}`);
    }
  }
  const pal = d.palette;
  if (pal !== undefined) {
    const bad = typeof pal !== "object" || pal === null || Object.values(pal).some((c) => typeof c !== "string" || !/^#[0-9a-fA-F]{6}$/.test(c));
    if (bad) throw new ModelLoadError(`${where}: palette must map labels to "#rrggbb" colours`);
  }
}
