/** Emotion colours: the project's single palette (src/affectlens/palette.json), bundled at build time. */
import palette from "../../../src/affectlens/palette.json";

/** Labels in display order, and their colours (CSS hex). */
export const PALETTE: { order: string[]; colors: Record<string, string> } = palette;

/** CSS colour of a label; grey for a label the palette does not know. */
export function emotionColor(label: string): string {
  return PALETTE.colors[label] ?? "#757575";
}
