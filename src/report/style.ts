// What every report section shares: the page CSS, run swatches and number formatting.
import { esc } from './charts.js';

export type Style = { color: string; dash: string };

export function swatch(s: Style | undefined): string {
  if (!s) return '';
  // Dashed runs get a striped swatch, echoing their dashed line in the charts.
  const bg = s.dash ? `repeating-linear-gradient(90deg,${s.color} 0 3px,transparent 3px 5px)` : s.color;
  return `<span class="swatch" style="background:${bg}"></span>`;
}

export function fmtNumber(v: unknown): string {
  if (typeof v !== 'number') return v === undefined ? '' : String(v);
  if (Number.isNaN(v)) return 'NaN';
  if (Number.isInteger(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-3) return v.toExponential(2);
  return v.toFixed(a >= 100 ? 1 : a >= 10 ? 2 : 4);
}

/** Nested object → [path, value] leaves (arrays are leaves). */
export function leaves(obj: unknown, path: string[] = []): Array<{ path: string[]; value: unknown }> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return [{ path, value: obj }];
  return Object.entries(obj as Record<string, unknown>).flatMap(([k, v]) => leaves(v, [...path, k]));
}

export function safeJson(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2) ?? String(v);
  } catch {
    return String(v);
  }
}

export { esc };

export const CSS = `
:root{--fg:#1f2937;--muted:#6b7280;--line:#e5e7eb;--bg:#f7f8fa;--card:#fff;--accent:#2563eb;--best:#ecfdf5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1240px;margin:0 auto;padding:28px 24px 64px}
header h1{margin:0 0 4px;font-size:26px;letter-spacing:-.01em}
h2{font-size:19px;margin:36px 0 12px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:22px 0 10px}
nav{display:flex;gap:16px;margin:10px 0 0;font-size:13px}
nav a{color:var(--accent);text-decoration:none}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:12.5px}
pre{background:#f3f4f6;border:1px solid var(--line);border-radius:6px;padding:12px;overflow:auto;max-height:480px}
.muted{color:var(--muted);font-weight:normal}
.note{color:var(--muted);font-size:12px;margin:6px 0 0}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:12px 14px;margin:0 0 16px}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(360px,1fr));gap:14px}
.chart-card{margin:0;padding:8px 10px 4px}
figcaption{font-size:13px;margin:0 0 2px;display:flex;gap:8px;align-items:baseline}
figcaption code{font-weight:600}
.tag{margin-left:auto;font-size:10.5px;text-transform:uppercase;letter-spacing:.05em;color:#9ca3af}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{font:11px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:#4b5563}
svg.chart .grid line{stroke:#eef0f3;stroke-width:1}
svg.chart .grid line.xt{stroke:#9ca3af}
svg.chart .axis{stroke:#9ca3af;stroke-width:1}
svg.chart .xlabel{fill:var(--muted)}
.scroll{overflow-x:auto}
table{border-collapse:collapse;background:var(--card);font-size:13px}
th,td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:left;white-space:nowrap}
thead th{background:#f3f4f6;font-weight:600}
th.group{text-align:center;border-left:1px solid var(--line);text-transform:uppercase;font-size:11.5px;letter-spacing:.04em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.meter{display:inline-block;width:56px;height:6px;margin-right:10px;background:#eef0f3;border-radius:3px;vertical-align:1px;overflow:hidden}
.meter span{display:block;height:100%;background:#93c5fd}
.v{display:inline-block;min-width:4.8em}
td.best{font-weight:700;color:#065f46}
td.train,th.train{color:#9ca3af}
.ci{display:block;font-size:11px;color:var(--muted);font-weight:normal}
table.summary td.ci-col{color:var(--muted)}
tr.baseline th,tr.baseline td{background:#fafafa}
tr.baseline .run{font-weight:normal;color:var(--muted);padding-left:22px}
table.summary tr.group-start>*,table.evals tr.group-start>*{border-top:2px solid #d1d5db}
td.pos{color:#065f46}td.neg{color:#b91c1c}
details.probe{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:8px 12px}
details.probe>summary{font-size:15px}
td.na{color:#c0c4cc}
table.evals,table.runs{min-width:50%}
table.pics{background:transparent}
table.pics td,table.pics th{border:0;padding:3px;text-align:center;vertical-align:middle}
table.pics thead th{background:transparent;font-size:12px;color:var(--muted);font-weight:500}
table.pics img{display:block;image-rendering:pixelated;border-radius:3px;box-shadow:0 0 0 1px rgba(0,0,0,.08)}
.rowhead{color:var(--muted);font-weight:500}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:7px;vertical-align:0}
.chip{display:inline-block;width:12px;height:12px;border-radius:2px;margin-right:6px;vertical-align:-1px;box-shadow:0 0 0 1px rgba(0,0,0,.15)}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;margin:10px 0 2px}
.legend .absent{opacity:.45}
.bad{font-size:11px;color:#b91c1c;white-space:normal}
details{margin:8px 0}
summary{cursor:pointer;font-weight:600}
`;
