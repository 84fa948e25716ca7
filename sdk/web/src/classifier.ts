/**
 * Emotion classification of aligned faces with the ONNX model its spec JSON describes
 * (a port of `affectlens.classifier`). Crop size, colour, scale, mean/std, template, labels,
 * output name and kind all come from the spec.
 */
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { alignFace } from "./align.js";
import { ModelLoadError } from "./errors.js";
import { bgrToGray, Image8 } from "./imageops.js";
import { channelsOf, ModelSpec } from "./spec.js";

type OrtTensorCtor = new (type: "float32", data: Float32Array, dims: number[]) => Tensor;

/** Probabilities over the spec's labels for faces given by their 5 landmarks. */
export class EmotionClassifier {
  constructor(
    private readonly session: InferenceSession,
    private readonly TensorCtor: OrtTensorCtor,
    readonly spec: ModelSpec,
    where: string,
  ) {
    checkGraph(session, spec, where);
  }

  get labels(): string[] {
    return this.spec.labels;
  }

  /** Warp every face to the spec's template (leaving its roll dead band): BGR crops of the spec's size. */
  align(image: Image8, landmarks: number[][][]): Image8[] {
    const { points_norm, roll_dead_band_deg = 0 } = this.spec.alignment;
    return landmarks.map((pts) => alignFace(image, pts, points_norm, this.spec.input.size_hw, roll_dead_band_deg));
  }

  /** BGR (or gray) crops → the model's float32 NCHW input, exactly as Python's `preprocess`. */
  preprocess(crops: Image8[]): Float32Array {
    const { size_hw: [h, w], color, scale, mean, std } = this.spec.input;
    const c = channelsOf(this.spec);
    const plane = h * w;
    const x = new Float32Array(crops.length * c * plane);
    const f = Math.fround;
    const s32 = f(scale);
    const m32 = mean.map(f), d32 = std.map(f);
    crops.forEach((crop, n) => {
      if (crop.width !== w || crop.height !== h) throw new RangeError(`expected ${w}x${h} crops, got ${crop.width}x${crop.height}`);
      const src = color === "gray" ? (crop.channels === 1 ? crop : bgrToGray(crop)) : crop;
      const base = n * c * plane;
      for (let ch = 0; ch < c; ch++) {
        // gray: the single plane; rgb: BGR channel 2-ch; bgr: channel ch
        const sc = src.channels === 1 ? 0 : color === "rgb" ? 2 - ch : ch;
        for (let i = 0; i < plane; i++) {
          x[base + ch * plane + i] = f(f(f(src.data[i * src.channels + sc] * s32) - m32[ch]) / d32[ch]);
        }
      }
    });
    return x;
  }

  /** `(n, labels)` probabilities (rows sum to 1) for aligned crops. */
  async classifyCrops(crops: Image8[]): Promise<number[][]> {
    if (!crops.length) return [];
    const { size_hw: [h, w], name } = this.spec.input;
    const x = this.preprocess(crops);
    const res = await this.session.run({ [name]: new this.TensorCtor("float32", x, [crops.length, channelsOf(this.spec), h, w]) });
    const out = res[this.spec.output_name].data as Float32Array;
    const k = this.labels.length;
    const rows: number[][] = [];
    for (let i = 0; i < crops.length; i++) {
      let row = Array.from(out.subarray(i * k, (i + 1) * k));
      if (this.spec.output_kind === "logits") row = softmax(row);
      rows.push(row);
    }
    for (const t of Object.values(res)) (t as Tensor).dispose?.();
    return rows;
  }

  /** Align every face by its landmarks and classify all of them in one batch. */
  async classify(image: Image8, landmarks: number[][][]): Promise<number[][]> {
    return this.classifyCrops(this.align(image, landmarks));
  }
}

function softmax(v: number[]): number[] {
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/** The graph must have the spec's input and output names, input size and label count. */
function checkGraph(session: InferenceSession, spec: ModelSpec, where: string): void {
  if (!session.inputNames.includes(spec.input.name)) {
    throw new ModelLoadError(`${where}: the spec names input '${spec.input.name}', the model has ${JSON.stringify(session.inputNames)}`);
  }
  if (!session.outputNames.includes(spec.output_name)) {
    throw new ModelLoadError(`${where}: the spec names output '${spec.output_name}', the model has ${JSON.stringify(session.outputNames)}`);
  }
  const meta = (session as unknown as { inputMetadata?: { name: string; shape?: (number | string)[] }[] }).inputMetadata;
  const inp = meta?.find?.((m) => m.name === spec.input.name);
  if (inp?.shape) {
    const want = [channelsOf(spec), ...spec.input.size_hw];
    const bad = inp.shape.length !== 4 || inp.shape.slice(1).some((s, i) => typeof s === "number" && s !== want[i]);
    if (bad) throw new ModelLoadError(`${where}: model input shape [${inp.shape}] does not match the spec's (N, ${want})`);
  }
  const ometa = (session as unknown as { outputMetadata?: { name: string; shape?: (number | string)[] }[] }).outputMetadata;
  const out = ometa?.find?.((m) => m.name === spec.output_name);
  const width = out?.shape?.[out.shape.length - 1];
  if (typeof width === "number" && width !== spec.labels.length) {
    throw new ModelLoadError(`${where}: model outputs ${width} classes, the spec lists ${spec.labels.length} labels`);
  }
}
