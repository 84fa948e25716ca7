/**
 * Per-track smoothing of emotion probabilities in video time: ports of Python's
 * `MovingAverageSmoother`, `EmaSmoother`, `HmmSmoother` and `NoSmoother` (same parameters in
 * seconds, the same frame-count aliases, the same arithmetic). The default is Python's video
 * default: the HMM filter expecting an expression to be held 0.8 s.
 */
import { ValueError } from "./errors.js";

/** Smoothing choice; seconds of video time, or the frame-count aliases (`window`, `alpha`, `stayProb`). */
export type SmoothingOptions =
  | { method: "none" }
  | { method: "moving-average"; windowS?: number; window?: number }
  | { method: "ema"; tauS?: number; alpha?: number }
  | { method: "hmm"; holdS?: number; stayProb?: number; minProb?: number };

export const DEFAULT_SMOOTHING: SmoothingOptions = { method: "hmm", holdS: 0.8 };

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

const mean = (rows: number[][]) => rows[0].map((_, k) => rows.reduce((a, r) => a + r[k], 0) / rows.length);

function exclusive(a: unknown, b: unknown, what: string): void {
  if (a !== undefined && b !== undefined) throw new ValueError(`give ${what}, not both; got ${a} and ${b}`);
}

function seconds(v: number, name: string, max: number): number {
  if (!(Number.isFinite(v) && v > 0 && v <= max)) throw new ValueError(`expected ${name} in (0, ${max}] seconds, got ${v}`);
  return v;
}

class NoSmoother extends Base<null> {
  protected step(_: number, p: number[]): number[] { return p; }
}

class MovingAverageSmoother extends Base<[number, number[]][]> {
  private readonly window?: number;
  private readonly windowS?: number;
  constructor(window?: number, windowS?: number) {
    super();
    exclusive(window, windowS, "window (frames) or windowS (seconds)");
    if (window !== undefined && !(Number.isInteger(window) && window >= 1 && window <= 300)) {
      throw new ValueError(`expected a window of 1..300 frames (10-30 recommended), got ${window}`);
    }
    this.window = window;
    this.windowS = window === undefined ? seconds(windowS ?? 0.5, "windowS", 60) : undefined;
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const buf = this.state.get(id) ?? [];
    buf.push([tMs, p]);
    if (this.window !== undefined) { if (buf.length > this.window) buf.shift(); }
    else while (buf[0][0] <= tMs - 1000 * (this.windowS as number)) buf.shift();
    this.state.set(id, buf);
    return mean(buf.map(([, q]) => q));
  }
}

class EmaSmoother extends Base<[number[], number]> {
  private readonly alpha?: number;
  private readonly tauS?: number;
  constructor(alpha?: number, tauS?: number) {
    super();
    exclusive(alpha, tauS, "alpha (per frame) or tauS (seconds)");
    if (alpha !== undefined && !(alpha > 0 && alpha <= 1)) throw new ValueError(`expected alpha in (0, 1], got ${alpha}`);
    this.alpha = alpha;
    this.tauS = alpha === undefined ? seconds(tauS ?? 0.3, "tauS", 60) : undefined;
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const prev = this.state.get(id);
    let s = p;
    if (prev) {
      const [sPrev, tPrev] = prev;
      const a = this.alpha ?? 1 - Math.exp(-Math.max(0, tMs - tPrev) / (1000 * (this.tauS as number)));
      s = p.map((v, k) => a * v + (1 - a) * sPrev[k]);
    }
    this.state.set(id, [s, tMs]);
    return s;
  }
}

class HmmSmoother extends Base<[number[], number]> {
  private readonly stayProb?: number;
  private readonly holdS?: number;
  constructor(stayProb: number | undefined, holdS: number | undefined, private readonly minProb: number) {
    super();
    exclusive(stayProb, holdS, "stayProb (per frame) or holdS (seconds)");
    if (stayProb !== undefined && !(stayProb >= 0 && stayProb < 1)) throw new ValueError(`expected stayProb in [0, 1), got ${stayProb}`);
    if (!(minProb >= 0 && minProb < 0.1)) throw new ValueError(`expected minProb in [0, 0.1), got ${minProb}`);
    this.stayProb = stayProb;
    this.holdS = stayProb === undefined ? seconds(holdS ?? 0.8, "holdS", 600) : undefined;
  }
  protected step(id: number, p: number[], tMs: number): number[] {
    const prev = this.state.get(id);
    let post: number[];
    if (!prev) post = [...p];
    else {
      const [q, tPrev] = prev;
      const stay = this.stayProb ?? Math.exp(-Math.max(0, tMs - tPrev) / (1000 * (this.holdS as number)));
      const off = (1 - stay) / Math.max(1, p.length - 1);
      post = q.map((v, k) => (v * stay + (1 - v) * off) * p[k]);
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
