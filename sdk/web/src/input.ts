/** Conversion of raw pixel buffers to the BGR uint8 image the pipeline works on. */
import { InvalidImageError } from "./errors.js";
import { Image8 } from "./imageops.js";

/** Smallest side that can hold a face (Python's `MIN_SIDE_PX`). */
export const MIN_SIDE_PX = 8;

/** Pixels you already have: `ImageData`, a decoded frame, a tensor from elsewhere. */
export interface RawImage {
  data: Uint8Array | Uint8ClampedArray;
  width: number;
  height: number;
  /** Channel order; default from the length: 4 → "rgba" (ImageData), 3 → "rgb", 1 → "gray". */
  format?: "rgba" | "bgra" | "rgb" | "bgr" | "gray";
}

export function isRawImage(x: unknown): x is RawImage {
  const r = x as RawImage;
  return !!r && typeof r === "object" && (r.data instanceof Uint8Array || r.data instanceof Uint8ClampedArray) &&
    Number.isInteger(r.width) && Number.isInteger(r.height);
}

/**
 * RGBA/RGB/BGR/gray pixels → BGR; alpha is composited onto white like Python's `to_bgr8`.
 *
 * @throws InvalidImageError inconsistent sizes, unknown format, or an image too small for a face.
 */
export function rawToBgr(img: RawImage): Image8 {
  const { width: w, height: h, data } = img;
  if (!(w > 0 && h > 0)) throw new InvalidImageError(`expected an image with width and height > 0, got ${w}x${h}`);
  if (Math.min(w, h) < MIN_SIDE_PX) {
    throw new InvalidImageError(`image is ${w}x${h} px; at least ${MIN_SIDE_PX}x${MIN_SIDE_PX} px is needed to hold a face`);
  }
  const n = w * h;
  const byLen: Record<number, RawImage["format"]> = { 4: "rgba", 3: "rgb", 1: "gray" };
  const format = img.format ?? byLen[data.length / n];
  const channels = { rgba: 4, bgra: 4, rgb: 3, bgr: 3, gray: 1 }[format ?? "rgba"];
  if (!format || !channels || data.length !== n * channels) {
    throw new InvalidImageError(
      `expected ${w}x${h} pixels with 1, 3 or 4 channels (${n}, ${3 * n} or ${4 * n} values), got ${data.length} values` +
      (img.format ? ` for format '${img.format}'` : ""));
  }
  const out = new Uint8Array(3 * n);
  const f = Math.fround;
  const swap = format === "rgba" || format === "rgb";
  if (channels === 3) { // video frames: a plain copy or channel swap
    if (!swap) out.set(data);
    else for (let i = 0; i < 3 * n; i += 3) { out[i] = data[i + 2]; out[i + 1] = data[i + 1]; out[i + 2] = data[i]; }
    return { data: out, width: w, height: h, channels: 3 };
  }
  for (let i = 0; i < n; i++) {
    const s = i * channels;
    let b: number, g: number, r: number;
    if (channels === 1) { b = g = r = data[s]; } else {
      b = data[s + (swap ? 2 : 0)]; g = data[s + 1]; r = data[s + (swap ? 0 : 2)];
    }
    if (channels === 4 && data[s + 3] !== 255) {
      const a = f(data[s + 3] / 255);
      const bg = f(255 * f(1 - a));
      b = Math.round(f(f(b * a) + bg)); g = Math.round(f(f(g * a) + bg)); r = Math.round(f(f(r * a) + bg));
    }
    out[3 * i] = b; out[3 * i + 1] = g; out[3 * i + 2] = r;
  }
  return { data: out, width: w, height: h, channels: 3 };
}
