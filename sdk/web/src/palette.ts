/** Emotion colours: the project's single palette (src/affectlens/palette.json), bundled at build time. */
import palette from "../../../src/affectlens/palette.json";

/** Labels in display order, and their colours (CSS hex). */
export const PALETTE: { order: string[]; colors: Record<string, string> } = palette;

/** Colour of "unreliable" faces and of a missing label (Python's `OTHER_COLOR_HEX`). */
export const OTHER_COLOR = "#bdbdbd";

/**
 * A deterministic colour for a label outside the palette (a custom model's own class), the same
 * as Python's `affectlens.labels.fallback_color`: FNV-1a (32 bit) of the UTF-8 bytes picks the
 * hue; saturation 0.6, lightness 0.45.
 */
export function fallbackColor(label: string): string {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(label)) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  const hue = h % 360, sat = 0.6, light = 0.45;
  const c = (1 - Math.abs(2 * light - 1)) * sat;
  const x = c * (1 - Math.abs(((hue / 60) % 2) - 1));
  const m = light - c / 2;
  const sector = [[c, x, 0], [x, c, 0], [0, c, x], [0, x, c], [x, 0, c], [c, 0, x]][Math.floor(hue / 60)];
  return "#" + sector.map((v) => Math.floor((v + m) * 255 + 0.5).toString(16).padStart(2, "0")).join("");
}

/**
 * CSS colour of a label: a model's own palette (an exported bundle's `spec.palette`) first, then
 * the project palette, then `fallbackColor`; grey for "unreliable" or no label.
 */
export function emotionColor(label: string | null | undefined, own?: Record<string, string>): string {
  if (!label || label === "unreliable") return OTHER_COLOR;
  return own?.[label] ?? PALETTE.colors[label] ?? fallbackColor(label);
}
