// Picture tiles for the report: float maps -> 8-bit RGB -> nearest-neighbour upscale -> PNG data: URL (sharp).
import sharp from 'sharp';

export interface GrayMap {
  width: number;
  height: number;
  data: Float32Array; // any range; normalised per map
}
export interface RgbMap {
  width: number;
  height: number;
  data: Float32Array; // HWC RGB in [0,1]
}
export interface LabelMap {
  width: number;
  height: number;
  data: Uint8Array;
  classes: number; // values >= classes (e.g. 255) are "ignore"
}

export interface Tile {
  src: string; // data:image/png;base64,...
  width: number; // encoded pixel size (after upscaling)
  height: number;
}

type Rgb = readonly [number, number, number];

// Inferno-like heat colormap anchors (t = 0, 0.25, 0.5, 0.75, 1).
const HEAT: Rgb[] = [
  [0, 0, 4],
  [87, 16, 110],
  [188, 55, 84],
  [249, 142, 9],
  [252, 255, 164],
];

export function heatColor(t: number): Rgb {
  const u = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0)) * (HEAT.length - 1);
  const i = Math.min(HEAT.length - 2, Math.floor(u));
  const f = u - i;
  const a = HEAT[i] as Rgb;
  const b = HEAT[i + 1] as Rgb;
  return [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, a[2] + (b[2] - a[2]) * f];
}

// Fixed categorical palette: 0 black (background by VOC convention), then 20 well-separated colours.
const PALETTE_HEX = [
  '#000000',
  '#e6194b',
  '#3cb44b',
  '#ffe119',
  '#4363d8',
  '#f58231',
  '#911eb4',
  '#42d4f4',
  '#f032e6',
  '#bfef45',
  '#fabed4',
  '#469990',
  '#dcbeff',
  '#9a6324',
  '#fffac8',
  '#800000',
  '#aaffc3',
  '#808000',
  '#ffd8b1',
  '#000075',
  '#a9a9a9',
];
/** Colour of "ignore" labels (values >= classes), as in VOC's void colour. */
export const IGNORE_COLOR = '#e0e0c0';

function hexRgb(hex: string): Rgb {
  const n = Number.parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function hslHex(h: number, s: number, l: number): string {
  const k = (n: number) => (n + h / 30) % 12;
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => l - a * Math.max(-1, Math.min(k(n) - 3, Math.min(9 - k(n), 1)));
  return `#${[f(0), f(8), f(4)]
    .map((v) =>
      Math.round(v * 255)
        .toString(16)
        .padStart(2, '0'),
    )
    .join('')}`;
}

/** Colour of class `c`; beyond the fixed palette, golden-angle hues (still deterministic). */
export function classColor(c: number): string {
  return PALETTE_HEX[c] ?? hslHex((c * 137.508) % 360, 0.65, c % 2 ? 0.45 : 0.65);
}

function upscale(rgb: Uint8Array, w: number, h: number, f: number): Uint8Array {
  if (f === 1) return rgb;
  const W = w * f;
  const out = new Uint8Array(W * h * f * 3);
  for (let y = 0; y < h * f; y++) {
    const sy = Math.floor(y / f);
    for (let x = 0; x < W; x++) {
      const s = (sy * w + Math.floor(x / f)) * 3;
      const d = (y * W + x) * 3;
      out[d] = rgb[s] as number;
      out[d + 1] = rgb[s + 1] as number;
      out[d + 2] = rgb[s + 2] as number;
    }
  }
  return out;
}

function checkSize(what: string, w: number, h: number, len: number, per: number): void {
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) throw new Error(`${what}: bad size ${w}x${h}`);
  if (len !== w * h * per) throw new Error(`${what}: ${w}x${h}x${per} needs ${w * h * per} values, got ${len}`);
}

/** Encodes 8-bit RGB as PNG, upscaled nearest-neighbour by an integer factor to at least `tile` px on its long side. */
export async function rgbTile(rgb: Uint8Array, w: number, h: number, tile = 96): Promise<Tile> {
  const f = Math.max(1, Math.ceil(tile / Math.max(w, h)));
  const png = await sharp(upscale(rgb, w, h, f), { raw: { width: w * f, height: h * f, channels: 3 } })
    .png({ compressionLevel: 9 })
    .toBuffer();
  return { src: `data:image/png;base64,${png.toString('base64')}`, width: w * f, height: h * f };
}

export async function rgbMapTile(m: RgbMap, tile?: number): Promise<Tile> {
  checkSize('RGB map', m.width, m.height, m.data.length, 3);
  const rgb = new Uint8Array(m.data.length);
  for (let i = 0; i < rgb.length; i++) {
    const v = m.data[i] as number;
    rgb[i] = Number.isFinite(v) ? Math.round(Math.min(1, Math.max(0, v)) * 255) : 0;
  }
  return rgbTile(rgb, m.width, m.height, tile);
}

/** Heat-coloured map, normalised to its own min..max (a constant map is all dark). */
export async function heatMapTile(m: GrayMap, tile?: number): Promise<Tile> {
  checkSize('attention map', m.width, m.height, m.data.length, 1);
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of m.data) {
    if (Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  const span = hi > lo ? hi - lo : 1;
  const rgb = new Uint8Array(m.data.length * 3);
  m.data.forEach((v, i) => {
    const c = heatColor(Number.isFinite(lo) ? (v - lo) / span : 0);
    rgb[i * 3] = Math.round(c[0]);
    rgb[i * 3 + 1] = Math.round(c[1]);
    rgb[i * 3 + 2] = Math.round(c[2]);
  });
  return rgbTile(rgb, m.width, m.height, tile);
}

export async function labelMapTile(m: LabelMap, tile?: number): Promise<Tile> {
  checkSize('label map', m.width, m.height, m.data.length, 1);
  const lut = new Map<number, Rgb>();
  const rgb = new Uint8Array(m.data.length * 3);
  m.data.forEach((c, i) => {
    let col = lut.get(c);
    if (!col) {
      col = hexRgb(c < m.classes ? classColor(c) : IGNORE_COLOR);
      lut.set(c, col);
    }
    rgb.set(col, i * 3);
  });
  return rgbTile(rgb, m.width, m.height, tile);
}
