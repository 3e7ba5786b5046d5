// Crop helpers shared by the part and object probes.
import type { Box, Image } from '../data/types.js';

/** Python's round(): halves go to the even neighbour (the reference computes crop sizes with it). */
export function pyRound(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** Integer crop with zero padding outside the image (PIL's Image.crop). */
export function cropPad(img: Image, box: Box): Image {
  const [x0, y0, x1, y1] = box;
  const w = x1 - x0;
  const h = y1 - y0;
  if (!(w > 0 && h > 0)) throw new Error(`crop: empty box [${box}]`);
  const C = img.channels;
  const data = new Float32Array(w * h * C);
  for (let y = Math.max(0, y0); y < Math.min(img.height, y1); y++) {
    for (let x = Math.max(0, x0); x < Math.min(img.width, x1); x++) {
      const s = (y * img.width + x) * C;
      const d = ((y - y0) * w + (x - x0)) * C;
      for (let c = 0; c < C; c++) data[d + c] = img.data[s + c] as number;
    }
  }
  return { data, width: w, height: h, channels: C };
}
