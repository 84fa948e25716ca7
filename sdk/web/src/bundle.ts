/**
 * Export bundles: the folder `affectlens export --model MODEL_DIR --format onnx --out OUT` writes
 * (detector, emotion model, its spec, labels.txt, manifest.json). `EmotionRecognizer.create({
 * modelPath | modelUrl })` loads one, or a spec JSON alone; the spec is the contract.
 */
import { ModelLoadError } from "./errors.js";
import type { Manifest } from "./recognizer.js";
import type { DetectorOptions } from "./detector.js";
import type { ModelSpec } from "./spec.js";

/** `manifest.json` of an export bundle (the keys the SDK reads). */
export interface BundleManifest {
  kind?: string;
  format: "onnx" | "ort";
  model: string;
  detector: string;
  emotion_model: string;
  spec: string;
  labels: string[];
  files: Record<string, { sha256: string; bytes: number }>;
  quality?: Manifest["quality"];
  notice?: string;
}

/** Whether parsed JSON is an export bundle's manifest (rather than a spec or the SDK's models manifest). */
export function isBundleManifest(raw: unknown): raw is BundleManifest {
  const d = raw as Record<string, unknown> | null;
  return !!d && typeof d === "object" && typeof d.emotion_model === "string" && typeof d.spec === "string" &&
    typeof d.detector === "string";
}

/** The folder part of a path or URL (with its trailing separator), `./` for a bare file name. */
export function folderOf(ref: string): string {
  return ref.replace(/[^/\\]*$/, "") || "./";
}

/**
 * The SDK manifest a bundle stands for: one model, the bundle's detector (with its sha256) and
 * the quality constants and notice the export wrote.
 *
 * @throws ModelLoadError a bundle without the quality constants (made before this SDK version) or without checksums.
 */
export function manifestOfBundle(b: BundleManifest, where: string): Manifest {
  if (!b.quality || !b.notice) {
    throw new ModelLoadError(`${where}: this bundle lacks the quality constants or the notice the SDK needs; ` +
      "re-export it with this version: affectlens export --model MODEL_DIR --format onnx --out OUT");
  }
  const det = b.files?.[b.detector], model = b.files?.[b.emotion_model];
  if (!det || !model) throw new ModelLoadError(`${where}: manifest.files lacks the sha256 of ${det ? b.emotion_model : b.detector}`);
  return {
    default_model: b.model,
    models: [{ name: b.model, spec: b.spec, file: b.emotion_model, sha256: model.sha256, bytes: model.bytes }],
    detector: { name: b.detector.replace(/\.(onnx|ort)$/, ""), file: b.detector, sha256: det.sha256, bytes: det.bytes,
      source: "export bundle" },
    notice: b.notice,
    quality: b.quality,
  };
}

/** Detector options a spec's `thresholds.detector` sets (Python's names → the SDK's). */
export function detectorThresholds(spec: ModelSpec): Partial<DetectorOptions> {
  const t = spec.thresholds?.detector ?? {};
  const out: Partial<DetectorOptions> = {};
  if (t.min_score !== undefined) out.minScore = t.min_score;
  if (t.nms_iou !== undefined) out.nmsIou = t.nms_iou;
  if (t.max_side_px !== undefined) out.maxSidePx = t.max_side_px;
  if (t.coarse_side_px !== undefined) out.coarseSidePx = t.coarse_side_px;
  return out;
}
