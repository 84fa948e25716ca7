/**
 * Per-track smoothing of emotion probabilities: ports of Python's `MovingAverageSmoother`,
 * `EmaSmoother`, `HmmSmoother` and `NoSmoother` (same parameters, same arithmetic).
 */
import { ValueError } from "./errors.js";

/** Smoothing choice: `{ method: "moving-average", window: 15 }` is the Python video default. */
export type SmoothingOptions =
  | { method: "none" }
  | { method: "moving-average"; window?: number }
  | { method: "ema"; alpha?: number }
  | { method: "hmm"; stayProb?: number; minProb?: number };

/** One smoothing state per track id. */
export interface TrackSmoother {
  /** Update track `trackId` with raw probabilities; returns the smoothed row (sums to 1). */
  smooth(trackId: number, p: number[]): number[];
  forget(trackIds: Iterable<number>): void;
  reset(): void;
}

abstract class Base<S> implements TrackSmoother {
  protected state = new Map<number, S>();
  protected abstract step(trackId: number, p: number[]): number[];
  smooth(trackId: number, p: number[]): number[] {
    const s = this.step(trackId, p);
    const sum = Math.max(s.reduce((a, b) => a + b, 0), 1e-12);
    return s.map((v) => v / sum);
  }
  forget(ids: Iterable<number>): void { for (const id of ids) this.state.delete(id); }
  reset(): void { this.state.clear(); }
}

class NoSmoother extends Base<null> {
  protected step(_: number, p: number[]): number[] { return p; }
}

class MovingAverageSmoother extends Base<number[][]> {
  constructor(readonly window: number) {
    super();
    if (!(Number.isInteger(window) && window >= 1 && window <= 300)) {
      throw new ValueError(`expected a window of 1..300 frames (10-30 recommended), got ${window}`);
    }
  }
  protected step(id: number, p: number[]): number[] {
    const buf = this.state.get(id) ?? [];
    buf.push(p);
    if (buf.length > this.window) buf.shift();
    this.state.set(id, buf);
    return p.map((_, k) => buf.reduce((a, r) => a + r[k], 0) / buf.length);
  }
}

class EmaSmoother extends Base<number[]> {
  constructor(readonly alpha: number) {
    super();
    if (!(alpha > 0 && alpha <= 1)) throw new ValueError(`expected alpha in (0, 1], got ${alpha}`);
  }
  protected step(id: number, p: number[]): number[] {
    const prev = this.state.get(id);
    const s = prev ? p.map((v, k) => this.alpha * v + (1 - this.alpha) * prev[k]) : p;
    this.state.set(id, s);
    return s;
  }
}

class HmmSmoother extends Base<number[]> {
  constructor(readonly stayProb: number, readonly minProb: number) {
    super();
    if (!(stayProb >= 0 && stayProb < 1)) throw new ValueError(`expected stayProb in [0, 1), got ${stayProb}`);
    if (!(minProb >= 0 && minProb < 0.1)) throw new ValueError(`expected minProb in [0, 0.1), got ${minProb}`);
  }
  protected step(id: number, p: number[]): number[] {
    const prev = this.state.get(id);
    let post: number[];
    if (!prev) post = [...p];
    else {
      const off = (1 - this.stayProb) / Math.max(1, p.length - 1);
      post = prev.map((q, k) => (q * this.stayProb + (1 - q) * off) * p[k]);
    }
    const s1 = Math.max(post.reduce((a, b) => a + b, 0), 1e-300);
    post = post.map((v) => Math.max(v / s1, this.minProb));
    const s2 = post.reduce((a, b) => a + b, 0);
    post = post.map((v) => v / s2);
    this.state.set(id, post);
    return post;
  }
}

/** A smoother from options (Python's `create_smoother`). */
export function createSmoother(o: SmoothingOptions): TrackSmoother {
  switch (o.method) {
    case "none": return new NoSmoother();
    case "moving-average": return new MovingAverageSmoother(o.window ?? 15);
    case "ema": return new EmaSmoother(o.alpha ?? 0.2);
    case "hmm": return new HmmSmoother(o.stayProb ?? 0.95, o.minProb ?? 1e-3);
    default:
      throw new ValueError(`smoothing.method must be one of none, moving-average, ema, hmm; got '${(o as { method: string }).method}'`);
  }
}
