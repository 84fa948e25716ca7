/**
 * Per-track smoothing of emotion probabilities in video time: ports of Python's
 * `MovingAverageSmoother`, `EmaSmoother`, `HmmSmoother` and `NoSmoother` (same parameters in
 * seconds, the same frame-count aliases, the same arithmetic), and `LearnedSmoother`, which runs
 * the same temporal ONNX model as Python's (a GRU per track with explicit state). The default
 * is Python's video default: the HMM filter expecting an expression to be held 0.8 s.
 */
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { ModelLoadError, ValueError } from "./errors.js";
import { headPose } from "./quality.js";

/** Smoothing choice; seconds of video time, or the frame-count aliases (`window`, `alpha`, `stayProb`). */
export type SmoothingOptions =
  | { method: "none" }
  | { method: "moving-average"; windowS?: number; window?: number }
  | { method: "ema"; tauS?: number; alpha?: number }
  | { method: "hmm"; holdS?: number; stayProb?: number; minProb?: number }
  /** `model`: a temporal model name from the manifest or a spec JSON path/URL (default: the one trained on the emotion model's outputs). */
  | { method: "learned"; model?: string };

export const DEFAULT_SMOOTHING: SmoothingOptions = { method: "hmm", holdS: 0.8 };

/** One smoothing state per track id. */
export interface TrackSmoother {
  /** Update track `trackId` with raw probabilities seen at `tMs`; returns the smoothed row (sums to 1). */
  smooth(trackId: number, p: number[], tMs: number): number[];
  forget(trackIds: Iterable<number>): void;
  reset(): void;
}

abstract class Base<S> implements TrackSmoother {
  protected state = new Map<number, S>();
  protected abstract step(trackId: number, p: number[], tMs: number): number[];
  smooth(trackId: number, p: number[], tMs: number): number[] {
    const s = this.step(trackId, p, tMs);
    const sum = Math.max(s.reduce((a, b) => a + b, 0), 1e-12);
    return s.map((v) => v / sum);
  }
  forget(ids: Iterable<number>): void { for (const id of ids) this.state.delete(id); }
  reset(): void { this.state.clear(); }
}

const mean = (rows: number[][]) => rows[0].map((_, k) => rows.reduce((a, r) => a + r[k], 0) / rows.length);

function exclusive(a: unknown, b: unknown, what: string): void {
  if (a !== undefined && b !== undefined) throw new ValueError(`give ${what}, not both; got ${a} and ${b}`);
}

function seconds(v: number, name: string, max: number): number {
  if (!(Number.isFinite(v) && v > 0 && v <= max)) throw new ValueError(`expected ${name} in (0, ${max}] seconds, got ${v}`);
  return v;
}

class NoSmoother extends Base<null> {
  protected step(_: number, p: number[]): number[] { return p; }
}

class MovingAverageSmoother extends Base<[number, number[]][]> {
  private readonly window?: number;
  private readonly windowS?: number;
  constructor(window?: number, windowS?: number) {
    super();
    exclusive(window, windowS, "window (frames) or windowS (seconds)");
    if (window !== undefined && !(Number.isInteger(window) && window >= 1 && window <= 300)) {
      throw new ValueError(`expected a window of 1..300 frames (10-30 recommended), got ${window}`);
    }
    this.window = window;
    this.windowS = window === undefined ? seconds(windowS ?? 0.5, "windowS", 60) : undefined;
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const buf = this.state.get(id) ?? [];
    buf.push([tMs, p]);
    if (this.window !== undefined) { if (buf.length > this.window) buf.shift(); }
    else while (buf[0][0] <= tMs - 1000 * (this.windowS as number)) buf.shift();
    this.state.set(id, buf);
    return mean(buf.map(([, q]) => q));
  }
}

class EmaSmoother extends Base<[number[], number]> {
  private readonly alpha?: number;
  private readonly tauS?: number;
  constructor(alpha?: number, tauS?: number) {
    super();
    exclusive(alpha, tauS, "alpha (per frame) or tauS (seconds)");
    if (alpha !== undefined && !(alpha > 0 && alpha <= 1)) throw new ValueError(`expected alpha in (0, 1], got ${alpha}`);
    this.alpha = alpha;
    this.tauS = alpha === undefined ? seconds(tauS ?? 0.3, "tauS", 60) : undefined;
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const prev = this.state.get(id);
    let s = p;
    if (prev) {
      const [sPrev, tPrev] = prev;
      const a = this.alpha ?? 1 - Math.exp(-Math.max(0, tMs - tPrev) / (1000 * (this.tauS as number)));
      s = p.map((v, k) => a * v + (1 - a) * sPrev[k]);
    }
    this.state.set(id, [s, tMs]);
    return s;
  }
}

class HmmSmoother extends Base<[number[], number]> {
  private readonly stayProb?: number;
  private readonly holdS?: number;
  constructor(stayProb: number | undefined, holdS: number | undefined, private readonly minProb: number) {
    super();
    exclusive(stayProb, holdS, "stayProb (per frame) or holdS (seconds)");
    if (stayProb !== undefined && !(stayProb >= 0 && stayProb < 1)) throw new ValueError(`expected stayProb in [0, 1), got ${stayProb}`);
    if (!(minProb >= 0 && minProb < 0.1)) throw new ValueError(`expected minProb in [0, 0.1), got ${minProb}`);
    this.stayProb = stayProb;
    this.holdS = stayProb === undefined ? seconds(holdS ?? 0.8, "holdS", 600) : undefined;
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const prev = this.state.get(id);
    let post: number[];
    if (!prev) post = [...p];
    else {
      const [q, tPrev] = prev;
      const stay = this.stayProb ?? Math.exp(-Math.max(0, tMs - tPrev) / (1000 * (this.holdS as number)));
      const off = (1 - stay) / Math.max(1, p.length - 1);
      post = q.map((v, k) => (v * stay + (1 - v) * off) * p[k]);
    }
    const s1 = Math.max(post.reduce((a, b) => a + b, 0), 1e-300);
    post = post.map((v) => Math.max(v / s1, this.minProb));
    const s2 = post.reduce((a, b) => a + b, 0);
    post = post.map((v) => v / s2);
    this.state.set(id, [post, tMs]);
    return post;
  }
}

/** A smoother from options (Python's `create_smoother`). */
export function createSmoother(o: SmoothingOptions): TrackSmoother {
  switch (o.method) {
    case "none": return new NoSmoother();
    case "moving-average": return new MovingAverageSmoother(o.window, o.windowS);
    case "ema": return new EmaSmoother(o.alpha, o.tauS);
    case "hmm": return new HmmSmoother(o.stayProb, o.holdS, o.minProb ?? 1e-3);
    case "learned":
      throw new ValueError("the learned smoother runs an ONNX model: create it with loadSmoother() (EmotionRecognizer does)");
    default:
      throw new ValueError(`smoothing.method must be one of none, moving-average, ema, hmm, learned; got '${(o as { method: string }).method}'`);
  }
}

// ----- the learned smoother -------------------------------------------------------------------

/** One tracked face of a frame, as a frame smoother sees it. */
export interface TrackedFace {
  trackId: number;
  /** The classifier's probabilities in label order. */
  p: number[];
  /** `[x1, y1, x2, y2]` pixels. */
  box: number[];
  /** Five `[x, y]` landmarks (pixels). */
  landmarks: number[][];
  /** Detection score. */
  score: number;
}

/** Smooths all tracked faces of one frame at once (what the recognizer calls). */
export interface FrameSmoother {
  /** Smoothed probabilities, one row per face (each sums to 1). */
  smoothFrame(faces: TrackedFace[], tMs: number): Promise<number[][]>;
  forget(trackIds: Iterable<number>): void;
  reset(): void;
}

/** A per-track smoother as a frame smoother. */
export function frameSmoother(s: TrackSmoother): FrameSmoother {
  return {
    smoothFrame: async (faces, tMs) => faces.map((f) => s.smooth(f.trackId, f.p, tMs)),
    forget: (ids) => s.forget(ids),
    reset: () => s.reset(),
  };
}

/** The spec JSON beside a temporal ONNX model (Python's `affectlens.temporal.learned`). */
export interface TemporalSpec {
  name: string;
  kind: "temporal-smoother";
  file: string;
  sha256: string;
  labels: string[];
  /** Quality inputs after the probabilities, in order (Python's `affectlens.temporal.synth.FEATURES`). */
  features: string[];
  hidden: number;
  classifier?: { name: string; sha256?: string };
}

/** A temporal model listed in the SDK's manifest. */
export interface TemporalEntry {
  name: string;
  spec: string;
  file: string;
  sha256: string;
  bytes: number;
  labels: string[];
  classifier: string;
}

/**
 * How each named input feature is computed from a tracked face (units as in Python's
 * `track_features`: face box width in pixels, pose proxies 0 where undefined, ms since the
 * track's previous frame, 0 on its first). Which features and in what order come from the spec.
 */
const FEATURES: Record<string, (f: TrackedFace, dtMs: number, noseRatio: number) => number> = {
  det_score: (f) => f.score,
  face_px: (f) => f.box[2] - f.box[0],
  yaw: (f, _, r) => { const v = headPose(f.landmarks, r)[0]; return Number.isNaN(v) ? 0 : v; },
  pitch: (f, _, r) => { const v = headPose(f.landmarks, r)[1]; return Number.isNaN(v) ? 0 : v; },
  dt_ms: (_, dt) => dt,
};

/** Validate a temporal spec (the same checks as Python's `resolve_temporal_spec`). */
export function parseTemporalSpec(raw: unknown, where: string): TemporalSpec {
  const d = (typeof raw === "object" && raw !== null ? raw : {}) as Record<string, any>;
  if (d.kind !== "temporal-smoother") {
    throw new ModelLoadError(`${where}: expected a spec with kind 'temporal-smoother', got '${d.kind}'`);
  }
  for (const key of ["file", "sha256", "labels", "features", "hidden"]) {
    if (!(key in d)) throw new ModelLoadError(`${where}: temporal model spec lacks the field '${key}'`);
  }
  const unknown = (d.features as string[]).filter((f) => !(f in FEATURES));
  if (unknown.length) {
    throw new ModelLoadError(`${where}: input features [${unknown.join(", ")}] are not known to this SDK ` +
      `(it computes ${Object.keys(FEATURES).join(", ")}); update @affectlens/web or use another smoothing method`);
  }
  return d as TemporalSpec;
}

/**
 * The temporal model for an emotion model, as Python's `pick_temporal_model`: same labels, and of
 * those the one trained on the same classifier, else on the same family (int8 or fp32 file).
 *
 * @throws ModelLoadError none has these labels.
 */
export function pickTemporalModel(models: TemporalEntry[], labels: string[], classifier: string): TemporalEntry {
  const same = models.filter((m) => m.labels.length === labels.length && m.labels.every((l, k) => l === labels[k]));
  if (!same.length) {
    const have = models.map((m) => `${m.name}: [${m.labels.join(", ")}] (from ${m.classifier})`).join("; ") || "none";
    throw new ModelLoadError(`no shipped temporal model was trained for the labels [${labels.join(", ")}] of ${classifier} ` +
      `(shipped: ${have}); train one with \`affectlens train-temporal --set classifier=NAME\` and pass its spec as ` +
      "smoothing.model, or use smoothing method hmm / ema / moving-average");
  }
  const family = (n: string) => n.replace(/-int8$/, "");
  return same.find((m) => m.classifier === classifier) ?? same.find((m) => family(m.classifier) === family(classifier)) ?? same[0];
}

/**
 * Per-track smoothing with the temporal ONNX model: all tracks of a frame in one call, the GRU
 * state of each track kept here between frames (Python's `LearnedSmoother`).
 */
export class LearnedSmoother implements FrameSmoother {
  private state = new Map<number, [Float32Array, number]>();
  readonly labels: string[];
  private readonly width: number;

  /**
   * @param session the temporal model (inputs `x`, `h`; outputs `probs`, `h_out`).
   * @param spec its spec; `labels` must equal the emotion model's.
   * @param frontalNoseRatio the pose constant of the quality signals (the manifest's `quality.frontal_nose_ratio`).
   * @throws ModelLoadError the graph's inputs/outputs are not the spec's.
   */
  constructor(
    private readonly session: InferenceSession,
    private readonly TensorCtor: new (type: "float32", data: Float32Array, dims: number[]) => Tensor,
    readonly spec: TemporalSpec,
    private readonly frontalNoseRatio: number,
    where = spec.file,
  ) {
    const names = [[...session.inputNames].join(","), [...session.outputNames].join(",")];
    if (names[0] !== "x,h" || names[1] !== "probs,h_out") {
      throw new ModelLoadError(`${where}: expected inputs [x, h] and outputs [probs, h_out], got [${names[0]}] and [${names[1]}]`);
    }
    this.labels = [...spec.labels];
    this.width = spec.labels.length + spec.features.length;
  }

  async smoothFrame(faces: TrackedFace[], tMs: number): Promise<number[][]> {
    const n = faces.length, c = this.labels.length, hidden = this.spec.hidden;
    if (!n) return [];
    const x = new Float32Array(n * this.width), h = new Float32Array(n * hidden);
    faces.forEach((f, i) => {
      if (f.p.length !== c) {
        throw new ModelLoadError(`${this.spec.name}: trained on ${c} labels [${this.labels.join(", ")}], got ${f.p.length} probabilities`);
      }
      const prev = this.state.get(f.trackId);
      const dt = prev ? Math.max(0, tMs - prev[1]) : 0;
      if (prev) h.set(prev[0], i * hidden);
      x.set(f.p, i * this.width);
      this.spec.features.forEach((name, k) => { x[i * this.width + c + k] = FEATURES[name](f, dt, this.frontalNoseRatio); });
    });
    const out = await this.session.run({ x: new this.TensorCtor("float32", x, [n, this.width]),
      h: new this.TensorCtor("float32", h, [n, hidden]) });
    const probs = out.probs.data as Float32Array, hOut = out.h_out.data as Float32Array;
    return faces.map((f, i) => {
      this.state.set(f.trackId, [hOut.slice(i * hidden, (i + 1) * hidden), tMs]);
      const row = Array.from(probs.subarray(i * c, (i + 1) * c));
      const sum = Math.max(row.reduce((a, b) => a + b, 0), 1e-12);
      return row.map((v) => v / sum);
    });
  }

  forget(ids: Iterable<number>): void { for (const id of ids) this.state.delete(id); }
  reset(): void { this.state.clear(); }
}

/** What `loadSmoother` needs from the recognizer: the emotion model and how to load files. */
export interface SmootherContext {
  labels: string[];
  /** The emotion model's name (spec `name`). */
  classifier: string;
  /** The manifest's `temporal_models` (absent in manifests built before them). */
  temporalModels?: TemporalEntry[];
  /** Resolve a manifest-relative file. */
  resolve(file: string): string;
  readJson(ref: string): Promise<unknown>;
  loadSession(ref: string, sha256: string): Promise<InferenceSession>;
  Tensor: new (type: "float32", data: Float32Array, dims: number[]) => Tensor;
  frontalNoseRatio: number;
}

/**
 * The frame smoother for `options`: the time-based ones at once, the learned one after loading its
 * temporal model (`options.model`, else the one trained on the emotion model's outputs).
 *
 * @throws ModelLoadError no matching temporal model, a bad spec or file, or labels that differ.
 * @throws ValueError options out of range.
 */
export async function loadSmoother(options: SmoothingOptions, ctx: SmootherContext): Promise<FrameSmoother> {
  if (options.method !== "learned") return frameSmoother(createSmoother(options));
  const models = ctx.temporalModels ?? [];
  let specRef: string;
  const ref = options.model;
  if (ref && (ref.includes("/") || ref.includes("\\") || ref.endsWith(".json"))) specRef = ref;
  else {
    const entry = ref ? models.find((m) => m.name === ref) : pickTemporalModel(models, ctx.labels, ctx.classifier);
    if (!entry) {
      throw new ModelLoadError(`${ref}: unknown temporal model; shipped: ${models.map((m) => m.name).join(", ") || "none"}; ` +
        "or give a path/URL of a temporal spec .json");
    }
    specRef = ctx.resolve(entry.spec);
  }
  const spec = parseTemporalSpec(await ctx.readJson(specRef), specRef);
  if (spec.labels.join("\u0000") !== ctx.labels.join("\u0000")) {
    throw new ModelLoadError(`${specRef}: the temporal model was trained on the outputs of ${spec.classifier?.name ?? "another model"} ` +
      `with labels [${spec.labels.join(", ")}], but the emotion model gives [${ctx.labels.join(", ")}]; retrain it for this model ` +
      "(`affectlens train-temporal --set classifier=NAME`) or use smoothing method hmm / ema / moving-average");
  }
  const onnxRef = specRef.replace(/[^/\\]*$/, "") + spec.file;
  const session = await ctx.loadSession(onnxRef, spec.sha256);
  return new LearnedSmoother(session, ctx.Tensor, spec, ctx.frontalNoseRatio, onnxRef);
}
