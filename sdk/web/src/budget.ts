/**
 * The video reading budget: Python's `VideoOptions.classify_per_s` (`affectlens.video.budget.ReadingBudget`).
 *
 * The emotion model reads at most about `perSecond` faces per second of video: faces without a
 * reading always, then the tracked faces read longest ago, as far as the credit goes; the others
 * keep their latest raw and smoothed reading for that frame (and the smoother is not fed one
 * reading twice). The credit is `perSecond` × the time since the previous frame; unused credit
 * carries over for at most one frame. With the default 30, one face at up to 30 frames/s is read
 * on every frame but its second, and a crowd of eight about four times a second each.
 */
import { ValueError } from "./errors.js";

/** A track's latest reading: raw and smoothed probabilities and the frame time (ms). */
export interface Reading {
  raw: number[];
  smoothed: number[];
  timestampMs: number;
}

/** Python's default `classify_per_s`. */
export const DEFAULT_CLASSIFY_PER_S = 30;

export class ReadingBudget {
  private readonly readings = new Map<number, Reading>();
  private credit = 0;
  private lastTs: number | null = null;

  /**
   * @param perSecond readings per second of video; 0 reads every face on every frame.
   * @throws ValueError a rate outside [0, 10000].
   */
  constructor(readonly perSecond: number = DEFAULT_CLASSIFY_PER_S) {
    if (!(perSecond >= 0 && perSecond <= 10_000)) {
      throw new ValueError(`classifyPerS must be in [0, 10000] faces per second (0 = read every face on every frame), got ${perSecond}`);
    }
  }

  /**
   * Which faces of this frame keep their latest reading (`true`) instead of being read.
   *
   * @param trackIds one per face (-1 while untracked: always read).
   * @param timestampMs the frame's time; call once per frame, in time order.
   */
  held(trackIds: number[], timestampMs: number): boolean[] {
    const keep = trackIds.map(() => false);
    const rate = this.perSecond;
    if (rate <= 0) return keep;
    const dtS = this.lastTs === null ? 0 : Math.max(0, timestampMs - this.lastTs) / 1000;
    this.lastTs = timestampMs;
    const known = trackIds.flatMap((t, i) => (this.readings.has(t) ? [i] : []));
    const credit = this.credit + rate * dtS - (trackIds.length - known.length); // new faces are read in any case
    const n = Math.min(known.length, Math.max(0, Math.trunc(credit + 1e-6))); // 30/s × 1/30 s is one reading
    const age = (i: number) => (this.readings.get(trackIds[i]) as Reading).timestampMs;
    const byAge = [...known].sort((a, b) => age(a) - age(b) || trackIds[a] - trackIds[b]);
    for (const i of byAge.slice(n)) keep[i] = true;
    this.credit = Math.min(Math.max(credit - n, -0.5 * rate), Math.max(1, rate * dtS));
    return keep;
  }

  /** The latest reading of a track (undefined when it has none). */
  get(trackId: number): Reading | undefined {
    return this.readings.get(trackId);
  }

  /** Record a track's fresh reading. */
  record(trackId: number, reading: Reading): void {
    this.readings.set(trackId, reading);
  }

  /** Drop the readings of ended tracks. */
  forget(trackIds: Iterable<number>): void {
    for (const t of trackIds) this.readings.delete(t);
  }

  /** Start over (a new stream). */
  reset(): void {
    this.readings.clear();
    this.credit = 0;
    this.lastTs = null;
  }
}
