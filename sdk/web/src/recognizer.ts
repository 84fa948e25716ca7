/**
 * `EmotionRecognizer`: detect → align → classify (→ track → smooth in video mode), in the style
 * of MediaPipe Tasks. The same ONNX files and constants as the Python library.
 */
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { EmotionClassifier } from "./classifier.js";
import { checkDetectorOptions, DEFAULT_DETECTOR_OPTIONS, Detections, DetectorOptions, RetinaFaceDetector } from "./detector.js";
import { DetectionScheduler, predictionError } from "./schedule.js";
import { InvalidImageError, ModelLoadError, ValueError } from "./errors.js";
import { FacesResult, FrameInfo, makeFace } from "./faces.js";
import { Image8 } from "./imageops.js";
import { assess, QualityConstants, qualitySignals } from "./quality.js";
import { SceneCutDetector } from "./scenecut.js";
import { DEFAULT_CLASSIFY_PER_S, Reading, ReadingBudget } from "./budget.js";
import { createSmoother, DEFAULT_SMOOTHING, FrameSmoother, loadSmoother, SmoothingOptions, TemporalEntry } from "./smoothing.js";
import { detectorThresholds, folderOf, isBundleManifest, manifestOfBundle } from "./bundle.js";
import { emotionColor } from "./palette.js";
import { ModelSpec, parseSpec } from "./spec.js";
import { DEFAULT_TRACKER_OPTIONS, FaceTracker, TrackerOptions } from "./tracking.js";

/** What the build writes beside the models (`models/manifest.json`), read from Python's registry. */
export interface Manifest {
  /** Python's `DEFAULT_MODEL` (the fp32 file of the default family). */
  default_model: string;
  /** Its int8 sibling, which Python's `select_variant()` runs on x86 CPUs with an int8 path (AVX2, VNNI, AMX). */
  default_int8_model?: string | null;
  /** The browser's default (`affectlens.export.portable_default()`). */
  web_default_model?: string;
  models: { name: string; spec: string; file: string; sha256: string; bytes: number }[];
  /** The learned smoother's temporal models (`smoothing: { method: "learned" }`), with the labels and classifier each learned from. */
  temporal_models?: TemporalEntry[];
  detector: { name: string; file: string; sha256: string; bytes: number; source: string };
  notice: string;
  quality: QualityConstants;
}

/** How the environment (browser or Node) loads files, runs ONNX and reads images. */
export interface Environment {
  ort: {
    InferenceSession: { create(model: Uint8Array, options?: InferenceSession.SessionOptions): Promise<InferenceSession> };
    Tensor: new (type: "float32", data: Float32Array, dims: number[]) => Tensor;
  };
  defaultModelBase(): string;
  join(base: string, file: string): string;
  readBytes(ref: string): Promise<Uint8Array>;
  sha256(bytes: Uint8Array): Promise<string | null>;
  toImage(input: unknown): Promise<Image8>;
  sessionOptions(threads: number): InferenceSession.SessionOptions;
  /** The model `"default"` means here. */
  defaultModel(manifest: Manifest): string;
}

/** Options of `EmotionRecognizer.create` (every field optional). */
export interface RecognizerOptions {
  /**
   * Emotion model: a shipped name or a path/URL of a spec JSON. `"default"` (or none) is what the
   * Python library runs on this machine in Node (its `select_variant()`: int8 on x86 CPUs with
   * AVX2/VNNI/AMX, else fp32), and `web_default_model` from the manifest in the browser.
   */
  model?: string;
  /**
   * An export bundle (`affectlens export --model MODEL_DIR --format onnx --out OUT`): its folder or
   * URL, its `manifest.json`, or a spec JSON (alone it runs with the package's detector). Labels,
   * preprocessing, thresholds and colours come from the bundle's spec. `modelPath` is the same
   * option under the name Node users expect; give one of them, not `model` too.
   */
  modelUrl?: string;
  /** Same as `modelUrl` (a folder path or file path in Node). */
  modelPath?: string;
  /** Folder or URL holding `manifest.json`, the specs and ONNX files (default: the package's `models/`). */
  modelBaseUrl?: string;
  /** Detector options (Python's names in camelCase) and optionally `model`, a path/URL of another RetinaFace ONNX. */
  detector?: Partial<DetectorOptions> & { model?: string };
  /** `"image"` (default): `detect()`; `"video"`: `detectForVideo()` with tracks and smoothing. */
  runningMode?: "image" | "video";
  /** Video mode: per-track smoothing in seconds of video time (default: Python's, `{ method: "hmm", holdS: 0.8 }`). */
  smoothing?: SmoothingOptions;
  /** Video mode: tracker options (Python's `TrackerOptions` in camelCase). */
  tracker?: Partial<TrackerOptions>;
  /** Faces whose quality (size, sharpness, pose, detection score) is below this read "unreliable" (default: the spec's `thresholds.min_quality`, else Python's, 0.3). */
  minQuality?: number;
  /** Video mode: end every track at a hard cut whose colour histograms differ by at least this (Python's default 0.35; null = off). */
  sceneCutDistance?: number | null;
  /**
   * Video mode: the emotion model reads at most about this many faces per second of video (Python's
   * `classify_per_s`, default 30): faces without a reading always, then those read longest ago; the
   * others keep their latest reading for that frame (`read` is false on them). 0 reads every face on
   * every frame.
   */
  classifyPerS?: number;
  /**
   * Video mode: the detector schedule (Python's `detect_every`). 0 (default, "auto"): the whole
   * frame at least every `rescanS` seconds and, between, windows around the tracked faces every
   * 2-4 frames as the tracks' stability allows (`regionsEvery` 0), the faces moved by the tracker
   * on the others. k >= 1: the whole frame every k-th frame, predicted between. 1: every frame.
   */
  detectEvery?: number;
  /** Video mode, `detectEvery` 0: longest time between two whole-frame scans (seconds, default 0.5; new faces appear within it). */
  rescanS?: number;
  /** Video mode, `detectEvery` 0: windows every this-many-th frame between scans, or 0 (default) for 2-4 from the tracks' stability. */
  regionsEvery?: number;
  /** ONNX Runtime threads (0 = its default). */
  threads?: number;
}

let ENV: Environment | null = null;

/** Set by the package entry (`node.ts` / `browser.ts`). */
export function setEnvironment(env: Environment): void {
  ENV = env;
}

const isRef = (s: string) => s.includes("/") || s.includes("\\") || s.endsWith(".json");

async function readJson(env: Environment, ref: string, what: string): Promise<unknown> {
  const bytes = await env.readBytes(ref);
  try {
    return JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new ModelLoadError(`${ref}: unreadable ${what} (${(e as Error).message})`);
  }
}

async function tryReadJson(env: Environment, ref: string): Promise<unknown> {
  try {
    return await readJson(env, ref, "bundle manifest");
  } catch {
    return null;
  }
}

/** Where the model, its spec and the detector come from, and the manifest that describes them. */
interface Sources {
  manifest: Manifest;
  specRef: string;
  detRef: string;
  detSha: string | null;
  /** Folder of the manifest: the temporal models it lists are resolved against it. */
  base: string;
}

async function packageSources(env: Environment, options: RecognizerOptions): Promise<Sources> {
  const base = options.modelBaseUrl ?? env.defaultModelBase();
  let manifest: Manifest;
  try {
    manifest = (await readJson(env, env.join(base, "manifest.json"), "SDK model manifest")) as Manifest;
  } catch (e) {
    const fix = options.modelBaseUrl === undefined
      ? "the package's models are missing: build the package (npm run build)"
      : "modelBaseUrl must hold the package's models/ folder (manifest.json, specs, ONNX files); " +
        "for a model of your own give modelPath/modelUrl of an export bundle (affectlens export --model MODEL_DIR --format onnx --out OUT)";
    throw new ModelLoadError(`${(e as Error).message}; ${fix}`);
  }
  const name = !options.model || options.model === "default" ? env.defaultModel(manifest) : options.model;
  let specRef: string;
  if (isRef(name)) specRef = name;
  else {
    const known = manifest.models.find((m) => m.name === name);
    if (!known) {
      throw new ModelLoadError(`${name}: unknown model; shipped models: ${manifest.models.map((m) => m.name).join(", ")}; ` +
        "or give a path/URL of a spec .json, or modelPath/modelUrl of an export bundle");
    }
    specRef = env.join(base, known.spec);
  }
  return { manifest, specRef, detRef: env.join(base, manifest.detector.file), detSha: manifest.detector.sha256, base };
}

/** Sources of an export bundle (folder, manifest.json or a spec JSON inside or outside one). */
async function bundleSources(env: Environment, ref: string, options: RecognizerOptions): Promise<Sources> {
  const isJson = /\.json$/i.test(ref);
  const manifestRef = isJson ? ref : env.join(ref, "manifest.json");
  let raw: unknown;
  try {
    raw = await readJson(env, manifestRef, isJson ? "bundle manifest or model spec" : "bundle manifest");
  } catch (e) {
    if (isJson) throw e;
    throw new ModelLoadError(`${ref}: no manifest.json, so not an export bundle (${(e as Error).message}); ` +
      "export a model folder with: affectlens export --model MODEL_DIR --format onnx --out OUT, or give its spec (MODEL_DIR/model.json)");
  }
  const fromBundle = (b: unknown, where: string, specRef?: string): Sources | null => {
    if (!isBundleManifest(b)) return null;
    const base = folderOf(where);
    const manifest = manifestOfBundle(b, where);
    return { manifest, specRef: specRef ?? env.join(base, b.spec), detRef: env.join(base, b.detector),
      detSha: manifest.detector.sha256, base };
  };
  const direct = fromBundle(raw, manifestRef);
  if (direct) return direct;
  if (!isJson) {
    throw new ModelLoadError(`${manifestRef}: not an AffectLens export bundle (it needs emotion_model, spec and detector); ` +
      "make one with: affectlens export --model MODEL_DIR --format onnx --out OUT");
  }
  // A spec JSON: the detector and constants of the bundle it sits in, else the package's.
  const sibling = join2(env, folderOf(ref), "manifest.json");
  const inBundle = fromBundle(await tryReadJson(env, sibling), sibling, ref);
  return inBundle ?? { ...(await packageSources(env, { ...options, model: undefined })), specRef: ref };
}

function join2(env: Environment, folder: string, file: string): string {
  return folder === "./" ? file : env.join(folder, file);
}

async function loadSession(env: Environment, ref: string, sha256: string | null, threads: number): Promise<InferenceSession> {
  const bytes = await env.readBytes(ref);
  if (sha256) {
    const got = await env.sha256(bytes);
    if (got !== null && got !== sha256) {
      throw new ModelLoadError(`${ref}: sha256 mismatch: the spec expects ${sha256.slice(0, 12)}…, the file has ${got.slice(0, 12)}…; ` +
        "the file is corrupt or not the model this spec describes");
    }
  }
  try {
    return await env.ort.InferenceSession.create(bytes, env.sessionOptions(threads));
  } catch (e) {
    throw new ModelLoadError(`${ref}: ONNX Runtime cannot load the model (${(e as Error).message})`);
  }
}

/**
 * Finds every face in an image and reads its expression into the model's labels.
 *
 * @example
 *   const rec = await EmotionRecognizer.create({ model: "default" });
 *   const result = await rec.detect(canvas);
 *   result.faces[0].emotion, result.faces[0].scores.happy
 *   rec.close();
 */
export class EmotionRecognizer {
  /** The notice every result display should show (the Python library's wording). */
  readonly notice: string;
  private closed = false;
  private lastTs: number | null = null;
  private frameIndex = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly tracker: FaceTracker;
  private readonly smoother: FrameSmoother;
  private readonly sceneCuts: SceneCutDetector | null;
  private held = new Map<number, { box: number[]; landmarks: number[][]; score: number }>(); // track → latest measured face

  private constructor(
    readonly detector: RetinaFaceDetector,
    readonly classifier: EmotionClassifier,
    readonly manifest: Manifest,
    readonly runningMode: "image" | "video",
    private readonly env: Environment,
    tracker: TrackerOptions,
    smoother: FrameSmoother,
    sceneCutDistance: number | null,
    readonly minQuality: number,
    private readonly sessions: InferenceSession[],
    private readonly budget: ReadingBudget,
    private readonly scheduler: DetectionScheduler,
  ) {
    this.notice = manifest.notice;
    this.sceneCuts = sceneCutDistance === null ? null : new SceneCutDetector(sceneCutDistance);
    this.tracker = new FaceTracker(tracker);
    this.smoother = smoother;
  }

  /**
   * Load the detector and the emotion model.
   *
   * @throws ModelLoadError unknown model name, missing file, bad spec, sha256 mismatch, or a graph that does not match its spec.
   * @throws ValueError options out of range.
   */
  static async create(options: RecognizerOptions = {}): Promise<EmotionRecognizer> {
    const env = ENV;
    if (!env) throw new ModelLoadError("no runtime: import the package through its browser or node entry");
    const mode = options.runningMode ?? "image";
    if (mode !== "image" && mode !== "video") throw new ValueError(`runningMode must be "image" or "video", got '${mode}'`);
    const bundleRef = options.modelUrl ?? options.modelPath;
    if (options.modelUrl && options.modelPath && options.modelUrl !== options.modelPath) {
      throw new ValueError("give modelUrl or modelPath (the same option), not two different values");
    }
    if (bundleRef && options.model) {
      throw new ValueError(`give either model ('${options.model}': a shipped name or spec) or modelUrl/modelPath ` +
        `('${bundleRef}': an export bundle or spec), not both`);
    }
    const { model: detModel, ...detOpts } = options.detector ?? {};
    checkDetectorOptions({ ...DEFAULT_DETECTOR_OPTIONS, ...detOpts }); // validate before loading anything
    const trackerOptions = { ...DEFAULT_TRACKER_OPTIONS, ...(options.tracker ?? {}) };
    const smoothing = options.smoothing ?? DEFAULT_SMOOTHING;
    if (smoothing.method !== "learned") createSmoother(smoothing); // validate before loading anything
    const sceneCut = options.sceneCutDistance === undefined ? 0.35 : options.sceneCutDistance;
    if (sceneCut !== null) new SceneCutDetector(sceneCut);
    const threads = options.threads ?? 0;
    // built (and so validated) before loading anything
    const budget = new ReadingBudget(options.classifyPerS ?? DEFAULT_CLASSIFY_PER_S);
    const scheduler = new DetectionScheduler(options.detectEvery ?? 0, 1000 * (options.rescanS ?? 0.5), options.regionsEvery ?? 0);
    if (options.minQuality !== undefined && !(options.minQuality >= 0 && options.minQuality <= 1)) {
      throw new ValueError(`minQuality must be in [0, 1], got ${options.minQuality}`);
    }
    const src = bundleRef ? await bundleSources(env, bundleRef, options) : await packageSources(env, options);
    const { manifest, specRef } = src;
    const spec: ModelSpec = parseSpec(await readJson(env, specRef, "model spec"), specRef);
    // thresholds: the user's options, else the spec's (an export bundle's), else Python's defaults
    const detectorOptions = checkDetectorOptions({ ...DEFAULT_DETECTOR_OPTIONS, ...detectorThresholds(spec), ...detOpts });
    const modelRef = env.join(folderOf(specRef), spec.file);
    const detRef = detModel ?? src.detRef;
    const detSha = detModel ? null : src.detSha;
    const [detSession, clfSession] = await Promise.all([
      loadSession(env, detRef, detSha, threads), loadSession(env, modelRef, spec.sha256, threads),
    ]);
    const detector = new RetinaFaceDetector(detSession, env.ort.Tensor, detectorOptions);
    const classifier = new EmotionClassifier(clfSession, env.ort.Tensor, spec, modelRef);
    const minQuality = options.minQuality ?? spec.thresholds?.min_quality ?? manifest.quality.default_min_quality;
    const sessions = [detSession, clfSession];
    const smoother = await loadSmoother(mode === "video" ? smoothing : { method: "none" }, {
      labels: classifier.labels, classifier: spec.name, temporalModels: manifest.temporal_models,
      resolve: (file) => env.join(src.base, file), readJson: (ref) => readJson(env, ref, "temporal model spec"),
      loadSession: async (ref, sha) => { const s = await loadSession(env, ref, sha, 1); sessions.push(s); return s; },
      Tensor: env.ort.Tensor, frontalNoseRatio: manifest.quality.frontal_nose_ratio,
    });
    return new EmotionRecognizer(detector, classifier, manifest, mode, env, trackerOptions, smoother, sceneCut,
      minQuality, sessions, budget, scheduler);
  }

  /** Label names of the probability columns (from the model's spec). */
  get labels(): string[] {
    return this.classifier.labels;
  }

  /**
   * `#rrggbb` per label, in label order: the spec's `palette` (export bundles), else the project
   * palette, else a deterministic colour per label (`fallbackColor`, the same as Python's).
   */
  get colors(): Record<string, string> {
    return Object.fromEntries(this.labels.map((l) => [l, emotionColor(l, this.classifier.spec.palette)]));
  }

  /** The emotion model's spec (input size, colour, normalisation, template, labels, metrics). */
  get spec(): ModelSpec {
    return this.classifier.spec;
  }

  /**
   * Analyse one still image (running mode "image").
   *
   * @param image HTMLImageElement, HTMLCanvasElement, OffscreenCanvas, ImageBitmap, VideoFrame,
   *   HTMLVideoElement, ImageData or `{ data, width, height, format? }` (Node: the last two).
   * @throws ValueError wrong running mode or a closed recognizer.
   * @throws InvalidImageError an unsupported or malformed input.
   */
  detect(image: unknown): Promise<FacesResult> {
    this.check("image", "detect", "detectForVideo");
    return this.serial(async () => {
      const bgr = await this.env.toImage(image);
      return this.analyse(bgr, { source: null, frame_index: null, timestamp_ms: null, image_size_hw: [bgr.height, bgr.width] }, false);
    });
  }

  /**
   * Analyse one video frame (running mode "video"): faces get track ids, and tracked faces'
   * `scores` are smoothed over time (`scores_raw` holds the frame's own).
   *
   * @param timestampMs presentation time in milliseconds; must increase from call to call.
   * @throws ValueError wrong running mode, a closed recognizer, or a timestamp not after the previous one.
   */
  detectForVideo(frame: unknown, timestampMs: number): Promise<FacesResult> {
    this.check("video", "detectForVideo", "detect");
    if (!Number.isFinite(timestampMs)) throw new ValueError(`expected a finite timestampMs, got ${timestampMs}`);
    if (this.lastTs !== null && timestampMs <= this.lastTs) {
      throw new ValueError(`timestamps must increase: got ${timestampMs} ms after ${this.lastTs} ms; call reset() to start a new stream`);
    }
    this.lastTs = timestampMs;
    const index = this.frameIndex++;
    return this.serial(async () => {
      const bgr = await this.env.toImage(frame);
      return this.analyse(bgr, { source: null, frame_index: index, timestamp_ms: timestampMs, image_size_hw: [bgr.height, bgr.width] }, true);
    });
  }

  /** Forget tracks and smoothing state (before a new stream); frames already submitted finish first. */
  reset(): void {
    this.lastTs = null; // the next detectForVideo() may start at any time
    this.frameIndex = 0;
    // the state after the frames already queued, before the ones that follow
    void this.serial(async () => {
      this.tracker.reset();
      this.smoother.reset();
      this.sceneCuts?.reset();
      this.budget.reset();
      this.scheduler.reset();
      this.held.clear();
    });
  }

  /** Release the ONNX sessions; the recognizer cannot be used afterwards. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue.catch(() => undefined);
    await Promise.all(this.sessions.map((s) => s.release?.()));
  }

  private check(mode: "image" | "video", method: string, other: string): void {
    if (this.closed) throw new ValueError(`${method}() called after close(); create a new EmotionRecognizer`);
    if (this.runningMode !== mode) {
      throw new ValueError(`${method}() needs runningMode "${mode}", this recognizer was created with "${this.runningMode}"; ` +
        `use ${other}() or create it with { runningMode: "${mode}" }`);
    }
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /**
   * Video mode's first half (Python's `VideoAnalyzer._find`): scene cut, detector schedule, the
   * whole frame or windows around the tracks or the tracks' predicted boxes, tracking.
   */
  private async find(bgr: Image8, ts: number): Promise<{ found: Detections; ids: number[]; ended: number[] }> {
    let cutEnded: number[] = [];
    if (this.sceneCuts?.update(bgr)) { // a new shot: every track ends, new faces get new ids
      cutEnded = this.tracker.finish();
      this.tracker.reset();
      this.held.clear();
      this.scheduler.reset();
    }
    const plan = this.scheduler.plan(ts, this.held.size > 0);
    if (plan === "predict") return { ...this.predicted(ts), ended: cutEnded };
    let found: Detections, ids: number[];
    if (plan === "regions") { // low scores may continue a track (as in the tracker's second stage)
      const det = this.detector.options;
      const pred = this.tracker.predict(ts);
      found = await this.detector.detectRegions(bgr, this.tracker.searchBoxes(ts), 2.2,
        Math.min(this.tracker.options.minLowScore, det.minScore));
      ids = this.tracker.update(found.xyxy, found.scores, ts);
      const keep = ids.flatMap((t, i) => (t > 0 || found.scores[i] >= det.minScore ? [i] : []));
      found = { xyxy: keep.map((i) => found.xyxy[i]), scores: keep.map((i) => found.scores[i]), landmarks: keep.map((i) => found.landmarks[i]) };
      ids = keep.map((i) => ids[i]);
      const { error, lost } = predictionError(pred.ids, pred.boxes, ids, found.xyxy);
      this.scheduler.observe(error, lost);
    } else {
      const rescan = this.held.size > 0 && this.scheduler.every === 0;
      found = await this.detector.detect(bgr, rescan ? this.rescanSide(bgr) : undefined);
      ids = this.tracker.update(found.xyxy, found.scores, ts);
    }
    this.held = new Map(ids.flatMap((t, i) => (t > 0 ? [[t, { box: found.xyxy[i], landmarks: found.landmarks[i], score: found.scores[i] }]] : [])));
    return { found, ids, ended: [...cutEnded, ...this.tracker.endedTrackIds] };
  }

  /** Faces of the held tracks at their predicted boxes; landmarks follow the box (scale and shift). */
  private predicted(ts: number): { found: Detections; ids: number[] } {
    const pred = this.tracker.predict(ts);
    const found: Detections = { xyxy: [], scores: [], landmarks: [] };
    const ids: number[] = [];
    pred.ids.forEach((t, k) => {
      const h = this.held.get(t);
      if (!h) return;
      const box = pred.boxes[k];
      const oc = [(h.box[0] + h.box[2]) / 2, (h.box[1] + h.box[3]) / 2], nc = [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2];
      const sc = [(box[2] - box[0]) / Math.max(h.box[2] - h.box[0], 1e-6), (box[3] - box[1]) / Math.max(h.box[3] - h.box[1], 1e-6)];
      found.xyxy.push(box);
      found.landmarks.push(h.landmarks.map(([x, y]) => [nc[0] + (x - oc[0]) * sc[0], nc[1] + (y - oc[1]) * sc[1]]));
      found.scores.push(h.score);
      ids.push(t);
    });
    return { found, ids };
  }

  /** Working size of the periodic re-scan while tracks are followed: half the frame's longer side, at least 640 px and at most `maxSidePx`. */
  private rescanSide(bgr: Image8): number {
    return Math.min(this.detector.options.maxSidePx, Math.max(640, Math.floor(Math.max(bgr.width, bgr.height) / 2)));
  }

  private async analyse(bgr: Image8, info: FrameInfo, video: boolean): Promise<FacesResult> {
    const labels = this.labels;
    const ts = info.timestamp_ms as number;
    let found: Detections, ids: number[];
    if (video) {
      let ended: number[];
      ({ found, ids, ended } = await this.find(bgr, ts));
      this.smoother.forget(ended);
      this.budget.forget(ended);
    } else {
      found = await this.detector.detect(bgr);
      ids = found.scores.map(() => -1);
    }
    const crops = this.classifier.align(bgr, found.landmarks);
    // video: faces the reading budget holds keep their latest reading (Python's classify_per_s)
    const keep = video ? this.budget.held(ids, ts) : ids.map(() => false);
    const fresh = keep.flatMap((k, i) => (k ? [] : [i]));
    const read = fresh.length ? await this.classifier.classifyCrops(fresh.map((i) => crops[i])) : [];
    const kept = ids.map((id, i) => (keep[i] ? this.budget.get(id) as Reading : null)); // latest readings of held faces
    const probs: number[][] = kept.map((r) => (r ? r.raw : []));
    fresh.forEach((i, k) => { probs[i] = read[k]; });
    const tracked = video ? fresh.filter((i) => ids[i] >= 0) : [];
    const rows = await this.smoother.smoothFrame(tracked.map((i) => ({ trackId: ids[i], p: probs[i], box: found.xyxy[i],
      landmarks: found.landmarks[i], score: found.scores[i] })), ts);
    const smoothedOf = new Map(tracked.map((i, k) => [i, rows[k]]));
    tracked.forEach((i) => this.budget.record(ids[i], { raw: probs[i], smoothed: smoothedOf.get(i) as number[], timestampMs: ts }));
    const q = this.manifest.quality;
    const faces = found.xyxy.map((box, i) => {
      const a = assess(qualitySignals(box, found.landmarks[i], found.scores[i], crops[i], q), q.signals);
      const quality = { ...a, reliable: a.quality >= this.minQuality, unreliable: q.unreliable };
      if (!video) return makeFace(box, found.landmarks[i], found.scores[i], probs[i], labels, null, quality);
      const smoothed = kept[i]?.smoothed ?? smoothedOf.get(i) ?? probs[i];
      const face = makeFace(box, found.landmarks[i], found.scores[i], smoothed, labels, ids[i] >= 0 ? ids[i] : null, quality, probs[i]);
      face.read = !keep[i];
      return face;
    });
    return { info, labels: [...labels], faces };
  }
}

export { InvalidImageError };
