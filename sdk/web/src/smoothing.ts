/**
 * Per-track smoothing of emotion probabilities: ports of Python's `MovingAverageSmoother`,
 * `EmaSmoother`, `HmmSmoother` and `NoSmoother` (same parameters, same arithmetic), in seconds
 * of video time (`windowS`, `tauS`, `holdS`) with the frame-count parameters (`window`, `alpha`,
 * `stayProb`) kept as aliases. See docs/temporal.md.
 */
import { ValueError } from "./errors.js";

/** Smoothing choice: `{ method: "hmm", holdS: 0.8 }` is the Python video default. */
export type SmoothingOptions =
  | { method: "none" }
  | { method: "moving-average"; window?: number; windowS?: number }
  | { method: "ema"; alpha?: number; tauS?: number }
  | { method: "hmm"; stayProb?: number; holdS?: number; minProb?: number };

/** One smoothing state per track id. */
export interface TrackSmoother {
  /** Update track `trackId` with raw probabilities seen at `tMs`; returns the smoothed row (sums to 1). */
  smooth(trackId: number, p: number[], tMs: number): number[];
  forget(trackIds: Iterable<number>): void;
  reset(): void;
}

abstract class Base<S> implements TrackSmoother {
  protected state = new Map<number, S>();
  protected abstract step(trackId: number, p: number[], tMs: number): number[];
  smooth(trackId: number, p: number[], tMs: number): number[] {
    const s = this.step(trackId, p, tMs);
    const sum = Math.max(s.reduce((a, b) => a + b, 0), 1e-12);
    return s.map((v) => v / sum);
  }
  forget(ids: Iterable<number>): void { for (const id of ids) this.state.delete(id); }
  reset(): void { this.state.clear(); }
}

class NoSmoother extends Base<null> {
  protected step(_: number, p: number[]): number[] { return p; }
}

function exclusive(a: unknown, b: unknown, what: string): void {
  if (a !== undefined && b !== undefined) throw new ValueError(`give ${what}, not both; got ${a} and ${b}`);
}

class MovingAverageSmoother extends Base<[number, number[]][]> {
  constructor(readonly window: number | undefined, readonly windowS: number | undefined) {
    super();
    exclusive(window, windowS, "window (frames) or windowS (seconds)");
    if (window !== undefined && !(Number.isInteger(window) && window >= 1 && window <= 300)) {
      throw new ValueError(`expected a window of 1..300 frames (10-30 recommended), got ${window}`);
    }
    if (window === undefined && windowS === undefined) this.windowS = 0.5;
    if (this.windowS !== undefined && !(this.windowS > 0 && this.windowS <= 60)) {
      throw new ValueError(`expected windowS in (0, 60] seconds (0.3-1 recommended), got ${this.windowS}`);
    }
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const buf = this.state.get(id) ?? [];
    buf.push([tMs, p]);
    if (this.window !== undefined) {
      if (buf.length > this.window) buf.shift();
    } else {
      while (buf[0][0] <= tMs - 1000 * (this.windowS as number)) buf.shift();
    }
    this.state.set(id, buf);
    return p.map((_, k) => buf.reduce((a, r) => a + r[1][k], 0) / buf.length);
  }
}

class EmaSmoother extends Base<[number[], number]> {
  constructor(readonly alpha: number | undefined, readonly tauS: number | undefined) {
    super();
    exclusive(alpha, tauS, "alpha (per frame) or tauS (seconds)");
    if (alpha !== undefined && !(alpha > 0 && alpha <= 1)) throw new ValueError(`expected alpha in (0, 1], got ${alpha}`);
    if (alpha === undefined && tauS === undefined) this.tauS = 0.3;
    if (this.tauS !== undefined && !(this.tauS > 0 && this.tauS <= 60)) {
      throw new ValueError(`expected tauS in (0, 60] seconds, got ${this.tauS}`);
    }
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const prev = this.state.get(id);
    let s = p;
    if (prev) {
      const a = this.alpha ?? 1 - Math.exp(-Math.max(0, tMs - prev[1]) / (1000 * (this.tauS as number)));
      s = p.map((v, k) => a * v + (1 - a) * prev[0][k]);
    }
    this.state.set(id, [s, tMs]);
    return s;
  }
}

class HmmSmoother extends Base<[number[], number]> {
  constructor(readonly stayProb: number | undefined, readonly holdS: number | undefined, readonly minProb: number) {
    super();
    exclusive(stayProb, holdS, "stayProb (per frame) or holdS (seconds)");
    if (stayProb !== undefined && !(stayProb >= 0 && stayProb < 1)) {
      throw new ValueError(`expected stayProb in [0, 1), got ${stayProb}`);
    }
    if (stayProb === undefined && holdS === undefined) this.holdS = 0.8;
    if (this.holdS !== undefined && !(this.holdS > 0 && this.holdS <= 600)) {
      throw new ValueError(`expected holdS in (0, 600] seconds, got ${this.holdS}`);
    }
    if (!(minProb >= 0 && minProb < 0.1)) throw new ValueError(`expected minProb in [0, 0.1), got ${minProb}`);
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const prev = this.state.get(id);
    let post: number[];
    if (!prev) post = [...p];
    else {
      const stay = this.stayProb ?? Math.exp(-Math.max(0, tMs - prev[1]) / (1000 * (this.holdS as number)));
      const off = (1 - stay) / Math.max(1, p.length - 1);
      post = prev[0].map((q, k) => (q * stay + (1 - q) * off) * p[k]);
    }
    const s1 = Math.max(post.reduce((a, b) => a + b, 0), 1e-300);
    post = post.map((v) => Math.max(v / s1, this.minProb));
    const s2 = post.reduce((a, b) => a + b, 0);
    post = post.map((v) => v / s2);
    this.state.set(id, [post, tMs]);
    return post;
  }
}

/** A smoother from options (Python's `create_smoother`). */
export function createSmoother(o: SmoothingOptions): TrackSmoother {
  switch (o.method) {
    case "none": return new NoSmoother();
    case "moving-average": return new MovingAverageSmoother(o.window, o.windowS);
    case "ema": return new EmaSmoother(o.alpha, o.tauS);
    case "hmm": return new HmmSmoother(o.stayProb, o.holdS, o.minProb ?? 1e-3);
    default:
      throw new ValueError(`smoothing.method must be one of none, moving-average, ema, hmm; got '${(o as { method: string }).method}'`);
  }
}
