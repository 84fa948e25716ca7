/** 5-point similarity alignment (Umeyama, no reflection), as Python's `affectlens.alignment`. */
import { Image8, resizeArea, warpAffineLinear } from "./imageops.js";

/**
 * Least-squares similarity (rotation, uniform scale, translation) mapping `src` onto `dst`.
 * Closed form of Umeyama's method in 2-D (identical to the SVD solution without reflection).
 *
 * @returns row-major 2x3 matrix `[a, b, tx, c, d, ty]` with `dst ≈ M · [x, y, 1]`.
 * @throws RangeError fewer than 2 points, different lengths, or coinciding source points.
 */
export function similarityTransform(src: number[][], dst: number[][]): number[] {
  const n = src.length;
  if (n < 2 || dst.length !== n) throw new RangeError(`expected two lists of k >= 2 points of one length, got ${n} and ${dst.length}`);
  let msx = 0, msy = 0, mdx = 0, mdy = 0;
  for (let i = 0; i < n; i++) { msx += src[i][0]; msy += src[i][1]; mdx += dst[i][0]; mdy += dst[i][1]; }
  msx /= n; msy /= n; mdx /= n; mdy /= n;
  let varS = 0, c00 = 0, c01 = 0, c10 = 0, c11 = 0;
  for (let i = 0; i < n; i++) {
    const sx = src[i][0] - msx, sy = src[i][1] - msy, dx = dst[i][0] - mdx, dy = dst[i][1] - mdy;
    varS += sx * sx + sy * sy;
    c00 += dx * sx; c01 += dx * sy; c10 += dy * sx; c11 += dy * sy;
  }
  varS /= n;
  if (varS < 1e-12) throw new RangeError("source points coincide; cannot estimate a similarity transform");
  const p = (c00 + c11) / n, q = (c10 - c01) / n;
  const norm = Math.hypot(p, q);
  const cos = norm > 0 ? p / norm : 1, sin = norm > 0 ? q / norm : 0;
  const scale = norm / varS;
  const a = scale * cos, b = -scale * sin, c = scale * sin, d = scale * cos;
  return [a, b, mdx - (a * msx + b * msy), c, d, mdy - (c * msx + d * msy)];
}

/**
 * Keep the roll (in-plane rotation) of a fitted similarity only beyond a dead band (Python's
 * `limit_roll`): a fitted rotation of `a` degrees becomes `sign(a) * max(0, |a| - deadBandDeg)`,
 * the fitted scale is kept and the centroid of `src` still lands on the centroid of `dst`.
 *
 * @param m row-major 2x3 similarity from `similarityTransform(src, dst)`.
 * @param deadBandDeg the dead band in degrees, in [0, 90); 0 returns `m` unchanged.
 */
export function limitRoll(m: number[], src: number[][], dst: number[][], deadBandDeg: number): number[] {
  if (!(deadBandDeg > 0)) return m;
  const angleDeg = (Math.atan2(m[3], m[0]) * 180) / Math.PI;
  const keptRad = ((Math.sign(angleDeg) * Math.max(0, Math.abs(angleDeg) - deadBandDeg)) * Math.PI) / 180;
  const scale = Math.hypot(m[0], m[3]);
  const a = scale * Math.cos(keptRad), c = scale * Math.sin(keptRad);
  const mean = (pts: number[][], i: number) => pts.reduce((acc, p) => acc + p[i], 0) / pts.length;
  const msx = mean(src, 0), msy = mean(src, 1), mdx = mean(dst, 0), mdy = mean(dst, 1);
  return [a, -c, mdx - (a * msx - c * msy), c, a, mdy - (c * msx + a * msy)];
}

/**
 * Warp one face onto the template (Python's `align_faces`): supersampled by k = floor(1/scale)
 * (1..8), then area-downscaled, so large faces do not alias.
 *
 * @param image BGR (or gray) uint8 image.
 * @param landmarks five (x, y) pixel points.
 * @param templateNorm five (x, y) template points as fractions of the crop (from the spec).
 * @param sizeHw crop height and width (from the spec).
 * @param rollDeadBandDeg roll in degrees the alignment leaves in place (the spec's
 *   `alignment.roll_dead_band_deg`; see `limitRoll`); 0 aligns fully.
 */
export function alignFace(image: Image8, landmarks: number[][], templateNorm: number[][], sizeHw: [number, number],
  rollDeadBandDeg = 0): Image8 {
  const [h, w] = sizeHw;
  const dst = templateNorm.map(([x, y]) => [x * w, y * h]);
  const m = limitRoll(similarityTransform(landmarks, dst), landmarks, dst, rollDeadBandDeg);
  const s = Math.sqrt(Math.abs(m[0] * m[4] - m[1] * m[3]));
  const k = Math.trunc(Math.min(8, Math.max(1, Math.floor(1 / Math.max(s, 1e-6)))));
  const big = warpAffineLinear(image, m.map((v) => v * k), w * k, h * k);
  return k === 1 ? big : resizeArea(big, w, h);
}
