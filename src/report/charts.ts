// Inline SVG line charts (no scripts): axes with "nice" ticks, grid, legend, one line per series.

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML/SVG content and attribute values. */
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ESC[c] as string);
}

export interface Series {
  name: string;
  color: string;
  dash?: string; // SVG stroke-dasharray, to tell apart runs that share a colour
  points: Array<[x: number, y: number]>; // non-finite y breaks the line
}

export interface LineChartOptions {
  series: Series[];
  xLabel?: string;
  width?: number;
  height?: number;
  /** Draw an EMA-smoothed line over a faint raw line when a series is long (noisy losses). */
  smooth?: boolean;
}

/** Run colours (Tableau 10), shared by every chart and swatch of a report. */
export const RUN_COLORS = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#edc948',
  '#b07aa1',
  '#ff9da7',
  '#9c755f',
  '#bab0ac',
];

export function runColor(i: number): string {
  return RUN_COLORS[i % RUN_COLORS.length] as string;
}

const DASHES = ['', '6 3', '2 2.5', '9 3 2 3'];

/** Colour per method, dash per run within a method: seeds of one method read as one family. */
export function runStyles(methods: readonly string[]): Array<{ color: string; dash: string }> {
  const order = [...new Set(methods)];
  const seen = new Map<string, number>();
  return methods.map((m) => {
    const k = seen.get(m) ?? 0;
    seen.set(m, k + 1);
    return { color: runColor(order.indexOf(m)), dash: DASHES[k % DASHES.length] as string };
  });
}

/** Step of 1, 2 or 5 times a power of ten giving about `target` intervals over `span`. */
export function niceStep(span: number, target: number): number {
  if (!(span > 0)) return 1;
  const raw = span / target;
  const e = Math.floor(Math.log10(raw) + 1e-12);
  const mag = Number(`1e${e}`); // exact power of ten (10 ** -4 is not)
  const f = raw / mag;
  const k = f <= 1 + 1e-9 ? 1 : f <= 2 + 1e-9 ? 2 : f <= 5 + 1e-9 ? 5 : 10;
  return Number(`${k}e${e}`);
}

export function ticks(lo: number, hi: number, step: number): number[] {
  const out: number[] = [];
  const first = Math.ceil(lo / step - 1e-9);
  for (let i = first; i * step <= hi + step * 1e-9; i++) out.push(i * step);
  return out;
}

/** Tick label precise enough for `step`, compact for large and tiny magnitudes. */
export function fmtTick(v: number, step: number): string {
  if (Math.abs(v) < step * 1e-6) return '0';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toFixed(Math.max(0, -Math.floor(Math.log10(step / 1e6))))}M`;
  if (a >= 1e4) return `${+(v / 1e3).toFixed(Math.max(0, -Math.floor(Math.log10(step / 1e3))))}k`;
  if (step < 1e-3) {
    const digits = Math.max(0, Math.floor(Math.log10(a)) - Math.floor(Math.log10(step)));
    return v
      .toExponential(digits)
      .replace(/e([+-])0*(\d)/, (_m, s: string, d: string) => `e${s === '-' ? '-' : ''}${d}`);
  }
  return v.toFixed(Math.max(0, -Math.floor(Math.log10(step) + 1e-9)));
}

/** Shortest value label for tooltips. */
export function fmtValue(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e6) ? v.toExponential(3) : String(+v.toPrecision(4));
}

/** Keeps min and max per x-pixel bucket so a long series stays small but keeps its envelope. */
function decimate(pts: Array<[number, number]>, buckets: number, x0: number, x1: number): Array<[number, number]> {
  if (pts.length <= buckets * 2) return pts;
  const out: Array<[number, number]> = [];
  const span = x1 - x0 || 1;
  let cur = -1;
  let lo: [number, number] | null = null;
  let hi: [number, number] | null = null;
  const flush = () => {
    if (lo && hi) out.push(...((lo[0] <= hi[0] ? [lo, hi] : [hi, lo]) as Array<[number, number]>));
  };
  for (const p of pts) {
    if (!Number.isFinite(p[1])) {
      flush();
      out.push(p);
      lo = hi = null;
      cur = -1;
      continue;
    }
    const b = Math.floor(((p[0] - x0) / span) * buckets);
    if (b !== cur) {
      flush();
      cur = b;
      lo = hi = p;
    } else {
      if (p[1] < (lo as [number, number])[1]) lo = p;
      if (p[1] > (hi as [number, number])[1]) hi = p;
    }
  }
  flush();
  return out;
}

/** Debiased EMA (as TensorBoard's smoothing): no drift from the first value at the start. */
function ema(pts: Array<[number, number]>): Array<[number, number]> {
  const beta = 1 - Math.min(0.5, 20 / pts.length);
  let acc = 0;
  let w = 0;
  return pts.map(([x, y]) => {
    if (!Number.isFinite(y)) return [x, y];
    acc = beta * acc + (1 - beta) * y;
    w = beta * w + (1 - beta);
    return [x, acc / w];
  });
}

const r1 = (v: number) => Math.round(v * 10) / 10;
const dashAttr = (dash?: string) => (dash ? ` stroke-dasharray="${esc(dash)}"` : '');

/** One SVG line chart; `series` overlaid, a legend on top. */
export function lineChart(opts: LineChartOptions): string {
  const W = opts.width ?? 380;
  const H = opts.height ?? 230;
  const series = opts.series.map((s) => ({
    ...s,
    points: s.points.filter(([x]) => Number.isFinite(x)).sort((a, b) => a[0] - b[0]),
  }));
  const finite = series.flatMap((s) => s.points.filter(([, y]) => Number.isFinite(y)));

  // Legend rows, wrapped by an estimated text width.
  const legend: Array<{ s: (typeof series)[number]; x: number; row: number }> = [];
  let lx = 0;
  let row = 0;
  for (const s of series) {
    const w = 26 + Math.min(s.name.length, 28) * 6.2 + 14;
    if (lx > 0 && lx + w > W - 56) {
      lx = 0;
      row++;
    }
    legend.push({ s, x: 56 + lx, row });
    lx += w;
  }
  const m = { l: 56, r: 14, t: 16 + (row + 1) * 16, b: 38 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const parts: string[] = [`<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" role="img">`];
  for (const { s, x, row: r } of legend) {
    const y = 14 + r * 16;
    const label = s.name.length > 28 ? `${s.name.slice(0, 27)}…` : s.name;
    parts.push(
      `<g class="legend"><line x1="${x}" y1="${y - 4}" x2="${x + 18}" y2="${y - 4}" stroke="${s.color}" stroke-width="2.5"${dashAttr(s.dash)}/>` +
        `<text x="${x + 24}" y="${y}">${esc(label)}</text></g>`,
    );
  }
  if (finite.length === 0) {
    parts.push(`<text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">no data</text></svg>`);
    return parts.join('');
  }

  let x0 = Math.min(...finite.map((p) => p[0]));
  let x1 = Math.max(...finite.map((p) => p[0]));
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  let y0 = Math.min(...finite.map((p) => p[1]));
  let y1 = Math.max(...finite.map((p) => p[1]));
  if (y0 === y1) {
    const d = Math.abs(y0) * 0.1 || 1;
    [y0, y1] = [y0 - d, y1 + d];
  }
  const ys = niceStep(y1 - y0, 5);
  y0 = Math.floor(y0 / ys + 1e-9) * ys;
  y1 = Math.ceil(y1 / ys - 1e-9) * ys;
  const xs = niceStep(x1 - x0, 6);
  const px = (x: number) => m.l + ((x - x0) / (x1 - x0)) * pw;
  const py = (y: number) => m.t + (1 - (y - y0) / (y1 - y0)) * ph;

  parts.push('<g class="grid">');
  for (const t of ticks(y0, y1, ys)) {
    const y = r1(py(t));
    parts.push(`<line x1="${m.l}" y1="${y}" x2="${m.l + pw}" y2="${y}"/>`);
    parts.push(`<text class="tick" x="${m.l - 6}" y="${y + 3.5}" text-anchor="end">${fmtTick(t, ys)}</text>`);
  }
  for (const t of ticks(x0, x1, xs)) {
    const x = r1(px(t));
    parts.push(`<line x1="${x}" y1="${m.t + ph}" x2="${x}" y2="${m.t + ph + 4}" class="xt"/>`);
    parts.push(`<text class="tick" x="${x}" y="${m.t + ph + 16}" text-anchor="middle">${fmtTick(t, xs)}</text>`);
  }
  parts.push('</g>');
  parts.push(
    `<path class="axis" d="M${m.l} ${m.t}V${m.t + ph}H${m.l + pw}" fill="none"/>`,
    `<text class="xlabel" x="${m.l + pw / 2}" y="${H - 4}" text-anchor="middle">${esc(opts.xLabel ?? 'step')}</text>`,
  );

  const toPath = (pts: Array<[number, number]>) => {
    let d = '';
    let pen = false;
    for (const [x, y] of pts) {
      if (!Number.isFinite(y)) {
        pen = false;
        continue;
      }
      d += `${pen ? 'L' : 'M'}${r1(px(x))} ${r1(py(y))}`;
      pen = true;
    }
    return d;
  };
  for (const s of series) {
    const pts = decimate(s.points, Math.ceil(pw), x0, x1);
    const ok = pts.filter(([, y]) => Number.isFinite(y));
    if (ok.length === 0) continue;
    const last = ok[ok.length - 1] as [number, number];
    const tip = `<title>${esc(s.name)}: ${fmtValue(last[1])} at ${fmtValue(last[0])}</title>`;
    const smooth = opts.smooth && s.points.length > 100;
    parts.push(`<g class="series">`);
    if (smooth) {
      parts.push(`<path d="${toPath(pts)}" fill="none" stroke="${s.color}" stroke-width="1" opacity="0.2"/>`);
      parts.push(
        `<path d="${toPath(decimate(ema(s.points), Math.ceil(pw), x0, x1))}" fill="none" stroke="${s.color}" stroke-width="1.8"${dashAttr(s.dash)}>${tip}</path>`,
      );
    } else {
      parts.push(
        `<path d="${toPath(pts)}" fill="none" stroke="${s.color}" stroke-width="1.8" stroke-linejoin="round"${dashAttr(s.dash)}>${tip}</path>`,
      );
    }
    if (ok.length === 1)
      parts.push(`<circle cx="${r1(px(last[0]))}" cy="${r1(py(last[1]))}" r="3" fill="${s.color}"/>`);
    parts.push('</g>');
  }
  parts.push('</svg>');
  return parts.join('');
}
