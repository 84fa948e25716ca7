/**
 * Browser entry: onnxruntime-web (WASM with SIMD, threads when the page is cross-origin
 * isolated), models fetched from the package's `models/` folder (or `modelBaseUrl`).
 * Frames are read into memory on this device and never sent anywhere.
 */
import * as ort from "onnxruntime-web/wasm";
import { InvalidImageError, ModelLoadError } from "./errors.js";
import { Image8 } from "./imageops.js";
import { isRawImage, rawToBgr } from "./input.js";
import { setEnvironment } from "./recognizer.js";

export * from "./common.js";

ort.env.wasm.wasmPaths = new URL("./ort/", import.meta.url).href;

type Drawable = CanvasImageSource & { width?: number; height?: number };

function sizeOf(x: any): [number, number] | null {
  if (typeof VideoFrame !== "undefined" && x instanceof VideoFrame) return [x.displayWidth, x.displayHeight];
  if (typeof HTMLVideoElement !== "undefined" && x instanceof HTMLVideoElement) return [x.videoWidth, x.videoHeight];
  if (typeof HTMLImageElement !== "undefined" && x instanceof HTMLImageElement) return [x.naturalWidth, x.naturalHeight];
  if ((typeof ImageBitmap !== "undefined" && x instanceof ImageBitmap) ||
      (typeof HTMLCanvasElement !== "undefined" && x instanceof HTMLCanvasElement) ||
      (typeof OffscreenCanvas !== "undefined" && x instanceof OffscreenCanvas)) return [x.width, x.height];
  return null;
}

let scratch: OffscreenCanvas | null = null;

async function toImage(input: unknown): Promise<Image8> {
  if (isRawImage(input)) return rawToBgr(input);
  const size = sizeOf(input);
  if (!size) {
    const got = input === null ? "null" : typeof input === "object" ? (input as object).constructor?.name : typeof input;
    throw new InvalidImageError("expected an HTMLImageElement, HTMLCanvasElement, OffscreenCanvas, ImageBitmap, VideoFrame, " +
      `HTMLVideoElement, ImageData or { data, width, height }, got ${got}`);
  }
  const [w, h] = size;
  if (!(w > 0 && h > 0)) throw new InvalidImageError(`the image or video has no pixels yet (${w}x${h}); wait until it has loaded`);
  scratch = scratch && scratch.width === w && scratch.height === h ? scratch : new OffscreenCanvas(w, h);
  const ctx = scratch.getContext("2d", { willReadFrequently: true }) as OffscreenCanvasRenderingContext2D;
  ctx.clearRect(0, 0, w, h);
  ctx.drawImage(input as Drawable, 0, 0, w, h);
  const data = ctx.getImageData(0, 0, w, h);
  return rawToBgr({ data: data.data, width: w, height: h, format: "rgba" });
}

const fetched = new Map<string, Promise<Uint8Array>>();

async function download(ref: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(ref);
  } catch (e) {
    throw new ModelLoadError(`${ref}: cannot fetch (${(e as Error).message})`);
  }
  if (!res.ok) throw new ModelLoadError(`${ref}: HTTP ${res.status}${res.status === 404 ? " (file not found)" : ""}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function sha256(bytes: Uint8Array): Promise<string | null> {
  if (!globalThis.crypto?.subtle) return null; // not a secure context: the check is skipped
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

setEnvironment({
  ort: ort as never,
  defaultModelBase: () => new URL("./models/", import.meta.url).href,
  join: (base, file) => new URL(file, new URL(base.endsWith("/") ? base : base + "/", location.href)).href,
  readBytes(ref) {
    // one download per file and page: a second recognizer (e.g. image and video mode) reuses it
    let bytes = fetched.get(ref);
    if (!bytes) {
      bytes = download(ref);
      fetched.set(ref, bytes);
      bytes.catch(() => fetched.delete(ref));
    }
    return bytes;
  },
  defaultModel: (m) => m.web_default_model ?? m.default_model,
  sha256,
  toImage,
  sessionOptions: (threads) => {
    const want = threads || Math.min(4, navigator.hardwareConcurrency || 1);
    ort.env.wasm.numThreads = globalThis.crossOriginIsolated ? want : 1;
    return { executionProviders: ["wasm"], graphOptimizationLevel: "all", logSeverityLevel: 3 };
  },
});
