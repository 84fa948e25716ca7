/**
 * How far a face's emotion reading can be trusted: a port of Python's `affectlens.quality`.
 * Four signals in [0, 1] (size, sharpness of the aligned crop, frontal pose from the 5
 * landmarks, detector score); the face's quality is the lowest, and below `minQuality` its
 * `emotion` reads "unreliable" (probabilities stay). Thresholds come from the Python package
 * through the build's manifest.json, never retyped here.
 */
import { bgrToGray, Image8 } from "./imageops.js";

/** Constants written by the build from `affectlens.quality` and `affectlens.video.aggregate`. */
export interface QualityConstants {
  min_face_px: number;
  good_face_px: number;
  good_sharpness: number;
  pose_tolerance: number;
  pose_limit: number;
  frontal_nose_ratio: number;
  default_min_quality: number;
  signals: string[];
  unreliable: string;
}

const clip01 = (x: number) => (Number.isNaN(x) ? NaN : Math.min(1, Math.max(0, x)));

/** Variance of `cv2.Laplacian(gray, CV_64F)` (3x3 cross kernel, reflect-101 borders). */
export function laplacianVariance(gray: Image8): number {
  const { width: w, height: h, data: d } = gray;
  const at = (x: number, y: number) => {
    x = x < 0 ? -x : x >= w ? 2 * w - 2 - x : x;
    y = y < 0 ? -y : y >= h ? 2 * h - 2 - y : y;
    return d[y * w + x];
  };
  let sum = 0, sum2 = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = at(x - 1, y) + at(x + 1, y) + at(x, y - 1) + at(x, y + 1) - 4 * d[y * w + x];
      sum += v; sum2 += v * v;
    }
  }
  const n = w * h, mean = sum / n;
  return sum2 / n - mean * mean;
}

/**
 * Yaw and pitch proxies in [-1, 1] from 5 landmarks (Python's `head_pose_from_landmarks`); NaN
 * where undefined (eyes coincide, or the mouth is not below the eyes).
 *
 * @param frontalNoseRatio where a frontal face's nose sits between eye line (0) and mouth line (1).
 */
export function headPose(lm: number[][], frontalNoseRatio: number): [number, number] {
  const eye = [(lm[0][0] + lm[1][0]) / 2, (lm[0][1] + lm[1][1]) / 2];
  const mouth = [(lm[3][0] + lm[4][0]) / 2, (lm[3][1] + lm[4][1]) / 2];
  const across = [lm[1][0] - lm[0][0], lm[1][1] - lm[0][1]];
  const iod = Math.hypot(across[0], across[1]);
  if (!(iod > 1e-6)) return [NaN, NaN];
  const u = [across[0] / iod, across[1] / iod], v = [-u[1], u[0]];
  const nose = [lm[2][0] - eye[0], lm[2][1] - eye[1]];
  const yaw = Math.min(1, Math.max(-1, (nose[0] * u[0] + nose[1] * u[1]) / (0.5 * iod)));
  const down = (mouth[0] - eye[0]) * v[0] + (mouth[1] - eye[1]) * v[1];
  if (!(down > 1e-6)) return [NaN, NaN];
  const r = (nose[0] * v[0] + nose[1] * v[1]) / down, ref = frontalNoseRatio;
  const pitch = Math.min(1, Math.max(-1, r < ref ? (ref - r) / ref : (ref - r) / (1 - ref)));
  return [yaw, pitch];
}

/** Frontal attention in [0, 1] from 5 landmarks (Python's head_pose + attention_from_pose). */
export function frontal(lm: number[][], q: QualityConstants): number {
  const [yaw, pitch] = headPose(lm, q.frontal_nose_ratio);
  if (Number.isNaN(yaw)) return 0;
  const f = (x: number) => clip01((q.pose_limit - Math.abs(x)) / (q.pose_limit - q.pose_tolerance));
  return f(yaw) * f(pitch);
}

/** The four signals of one face, keyed as Python's `SIGNALS`. */
export function qualitySignals(box: number[], lm: number[][], score: number, crop: Image8, q: QualityConstants): Record<string, number> {
  const side = Math.min(box[2] - box[0], box[3] - box[1]);
  const gray = crop.channels === 1 ? crop : bgrToGray(crop);
  const values: Record<string, number> = {
    size: clip01((side - q.min_face_px) / (q.good_face_px - q.min_face_px)),
    sharpness: clip01(laplacianVariance(gray) / q.good_sharpness),
    pose: frontal(lm, q),
    detection: clip01((score - 0.5) / 0.4),
  };
  return Object.fromEntries(q.signals.map((k) => [k, Math.fround(values[k])]));
}

/** `{quality, quality_reason}`: the lowest signal and its name (the first on ties, as numpy's argmin). */
export function assess(signals: Record<string, number>, order: string[]): { quality: number; reason: string } {
  let best = order[0];
  for (const k of order) if (signals[k] < signals[best]) best = k;
  return { quality: signals[best], reason: best };
}
