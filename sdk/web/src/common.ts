/** Exports shared by the browser and Node entries. */
export { EmotionRecognizer } from "./recognizer.js";
export type { RecognizerOptions, Manifest } from "./recognizer.js";
export type { Face, FacesResult, FrameInfo } from "./faces.js";
export type { DetectorOptions } from "./detector.js";
export type { TrackerOptions } from "./tracking.js";
export { createSmoother, frameSmoother, LearnedSmoother, loadSmoother, parseTemporalSpec, pickTemporalModel } from "./smoothing.js";
export type { FrameSmoother, SmoothingOptions, SmootherContext, TemporalEntry, TemporalSpec, TrackedFace, TrackSmoother } from "./smoothing.js";
export type { ModelSpec, InputSpec, AlignmentSpec, SpecThresholds } from "./spec.js";
export type { RawImage } from "./input.js";
export { AffectLensError, InvalidImageError, ModelLoadError, ValueError } from "./errors.js";
export { PALETTE, OTHER_COLOR, emotionColor, fallbackColor } from "./palette.js";
export type { BundleManifest } from "./bundle.js";
export { resizeArea, resizeLinear, warpAffineLinear, bgrToGray } from "./imageops.js";
export { similarityTransform, alignFace } from "./align.js";
export { ReadingBudget, DEFAULT_CLASSIFY_PER_S } from "./budget.js";
export type { Reading } from "./budget.js";
