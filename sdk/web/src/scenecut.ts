/**
 * Hard scene cuts between analysed video frames: a port of Python's
 * `affectlens.video.scenecut` (hue x saturation histograms, 16 x 8 bins, of a 96 x 54
 * thumbnail, compared with the Bhattacharyya distance). At a cut every track ends.
 */
import { ValueError } from "./errors.js";
import { Image8, resizeArea } from "./imageops.js";

const THUMB_W = 96, THUMB_H = 54, H_BINS = 16, S_BINS = 8;
const SHIFT = 12;
const SDIV = Array.from({ length: 256 }, (_, i) => (i ? Math.round((255 << SHIFT) / i) : 0));
const HDIV = Array.from({ length: 256 }, (_, i) => (i ? Math.round((180 << SHIFT) / (6 * i)) : 0));

/** Normalised 16 x 8 hue-saturation histogram of a BGR frame (OpenCV's 8-bit BGR→HSV, calcHist). */
export function frameSignature(bgr: Image8): Float64Array {
  // as Python: wide frames are sampled at 4 x 4 points per thumbnail pixel first (a 1080p area resize is slow)
  const src = bgr.width > 8 * THUMB_W ? nearest(bgr, 4 * THUMB_W, 4 * THUMB_H) : bgr;
  // (OpenCV enlarges frames under 96 x 54 bilinearly; sampling the nearest pixel approximates it)
  const small = src.width >= THUMB_W && src.height >= THUMB_H ? resizeArea(src, THUMB_W, THUMB_H) : nearest(src, THUMB_W, THUMB_H);
  const hist = new Float64Array(H_BINS * S_BINS);
  const d = small.data;
  for (let i = 0; i < THUMB_W * THUMB_H; i++) {
    const b = d[3 * i], g = d[3 * i + 1], r = d[3 * i + 2];
    const v = Math.max(b, g, r), diff = v - Math.min(b, g, r);
    const s = (diff * SDIV[v] + (1 << (SHIFT - 1))) >> SHIFT;
    let h = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
    h = (h * HDIV[diff] + (1 << (SHIFT - 1))) >> SHIFT;
    if (h < 0) h += 180;
    const hb = Math.floor((h * H_BINS) / 180), sb = Math.floor((s * S_BINS) / 256);
    if (hb < H_BINS) hist[hb * S_BINS + sb] += 1;
  }
  const total = Math.max(hist.reduce((a, x) => a + x, 0), 1);
  return hist.map((x) => x / total);
}

/** `cv2.resize(src, (w, h), interpolation=cv2.INTER_NEAREST)`. */
function nearest(src: Image8, w: number, h: number): Image8 {
  const out = new Uint8Array(w * h * 3);
  const fx = src.width / w, fy = src.height / h;
  for (let y = 0; y < h; y++) {
    const sy = Math.min(src.height - 1, Math.floor(y * fy));
    for (let x = 0; x < w; x++) {
      const sx = Math.min(src.width - 1, Math.floor(x * fx));
      for (let c = 0; c < 3; c++) out[(y * w + x) * 3 + c] = src.data[(sy * src.width + sx) * 3 + c];
    }
  }
  return { data: out, width: w, height: h, channels: 3 };
}

/** Bhattacharyya distance of two histograms (`cv2.compareHist(..., HISTCMP_BHATTACHARYYA)`). */
export function bhattacharyya(a: Float64Array, b: Float64Array): number {
  let s1 = 0, s2 = 0, r = 0;
  for (let i = 0; i < a.length; i++) { s1 += a[i]; s2 += b[i]; r += Math.sqrt(a[i] * b[i]); }
  const n = Math.abs(s1 * s2) > 1.1920929e-7 ? 1 / Math.sqrt(s1 * s2) : 1;
  return Math.sqrt(Math.max(1 - r * n, 0));
}

/** Says whether a frame starts a new shot (distance to the previous frame >= `minDistance`). */
export class SceneCutDetector {
  private prev: Float64Array | null = null;
  lastDistance: number | null = null;

  constructor(readonly minDistance = 0.35) {
    if (!(minDistance > 0 && minDistance <= 1)) throw new ValueError(`sceneCutDistance: expected a value in (0, 1], got ${minDistance}`);
  }

  reset(): void { this.prev = null; this.lastDistance = null; }

  update(bgr: Image8): boolean {
    const sig = frameSignature(bgr);
    const prev = this.prev;
    this.prev = sig;
    if (!prev) { this.lastDistance = null; return false; }
    this.lastDistance = bhattacharyya(prev, sig);
    return this.lastDistance >= this.minDistance;
  }
}
