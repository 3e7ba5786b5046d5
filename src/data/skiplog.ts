// The record of bad files a run skipped: one stderr line each, naming the file and the reason, and
// one JSON line each in a file (a run's skipped.jsonl), each file once however often it is met.
import { appendFileSync } from 'node:fs';
import type { SkippedFile } from './spec.js';

export type { SkippedFile } from './spec.js';

export class SkipLog {
  private readonly seen = new Set<string>();

  /** `file`: where the JSON lines go (created on the first skip); null = stderr only. */
  constructor(
    readonly file: string | null,
    private readonly stderr: (line: string) => void = (l) => process.stderr.write(l),
  ) {}

  get count(): number {
    return this.seen.size;
  }

  readonly record = (s: SkippedFile): void => {
    if (this.seen.has(s.path)) return;
    this.seen.add(s.path);
    this.stderr(`locus: skipped bad image ${s.path}: ${s.reason.replace(/\n[\s\S]*/, '')}\n`);
    if (this.file) appendFileSync(this.file, `${JSON.stringify({ path: s.path, reason: s.reason })}\n`);
  };
}
