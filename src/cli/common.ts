// Shared CLI helpers: option parsers, one-line errors, JSON output.
import { InvalidArgumentError } from 'commander';

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function parseIntOption(min: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`must be an integer ≥ ${min} (got '${value}')`);
    return n;
  };
}

/** The first line of an error's message (stack with LOCUS_DEBUG=1). */
export function errorLine(e: unknown): string {
  const err = e instanceof Error ? e : new Error(String(e));
  if (process.env.LOCUS_DEBUG) return err.stack ?? err.message;
  return err.message.split('\n')[0] as string;
}

/** Wraps an async action: any error becomes one line on stderr and exit code 1. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<number | undefined>) {
  return async (...args: A): Promise<void> => {
    let code = 0;
    try {
      code = (await fn(...args)) ?? 0;
    } catch (e) {
      process.stderr.write(`locus: error: ${errorLine(e)}\n`);
      code = 1;
    }
    // The loader's worker threads and libtorch's pools must not keep a finished command alive.
    process.exit(code);
  };
}

/** Prints one JSON object as the last line of stdout. */
export function printJson(v: unknown): void {
  process.stdout.write(`${JSON.stringify(v)}\n`);
}

/** Locus's version (package.json), as provenance records it. */
export { locusVersion as packageVersion } from '../train/provenance.js';
