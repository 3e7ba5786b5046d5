// The config section: keys that differ between runs, and each run's resolved config (collapsed).
import { esc, leaves, type Style, safeJson, swatch } from './style.js';
import type { ReportRun } from './types.js';

export function configSection(runs: ReportRun[], st: Style[]): string {
  const out: string[] = [];
  if (runs.length > 1) {
    const flat = runs.map((r) => new Map(leaves(r.config ?? {}).map((l) => [l.path.join('.'), safeJson(l.value)])));
    const keys = [...new Set(flat.flatMap((m) => [...m.keys()]))].sort();
    const differ = keys.filter((k) => new Set(flat.map((m) => m.get(k) ?? '∅')).size > 1);
    if (differ.length > 0) {
      out.push('<h3>Differences between runs</h3><div class="scroll"><table class="settings"><thead><tr><th>key</th>');
      out.push(...runs.map((r, i) => `<th>${swatch(st[i])}${esc(r.name)}</th>`));
      out.push('</tr></thead><tbody>');
      for (const k of differ)
        out.push(
          `<tr><td><code>${esc(k)}</code></td>${flat.map((m) => `<td><code>${esc(m.get(k) ?? '–')}</code></td>`).join('')}</tr>`,
        );
      out.push('</tbody></table></div>');
    } else {
      out.push('<p class="muted">All runs share the same resolved config.</p>');
    }
  }
  runs.forEach((r, i) => {
    out.push(
      `<details><summary>${swatch(st[i])}${esc(r.name)} — resolved config</summary><pre>${esc(safeJson(r.config ?? {}))}</pre></details>`,
    );
  });
  return out.join('\n');
}
