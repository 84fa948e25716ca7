/** AffectLens SDK errors. Every message says what was expected, what was found and the fix. */

/** Base class of every error the SDK throws on purpose. */
export class AffectLensError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A model file or its spec is missing, unreadable, fails its sha256 check or does not match the graph. */
export class ModelLoadError extends AffectLensError {}

/** An input image or frame that cannot be analysed (unsupported type, wrong size, empty). */
export class InvalidImageError extends AffectLensError {}

/** Misuse of the API: wrong running mode, timestamps going backwards, options out of range. */
export class ValueError extends AffectLensError {}
