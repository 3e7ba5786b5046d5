// SIGINT/SIGTERM during training: the first asks the loop to stop after the current step and write a
// checkpoint (exit 0); a second one aborts at once (exit 130) without a checkpoint. A repeat within
// DUPLICATE_MS of the first is the same request delivered twice: under `npx`, npm forwards the
// terminal's Ctrl-C to its child, which also gets it from the terminal. Launched by npm, the process
// also stops (as for SIGTERM) when its npm parent is gone, instead of training on as an orphan.

/** A repeat within this many ms is the same stop request delivered twice (npm forwards the terminal's Ctrl-C). */
export const DUPLICATE_MS = 1000;

export interface StopFlag {
  readonly requested: boolean;
  readonly signal: NodeJS.Signals | null;
  /** Removes the handlers. */
  dispose(): void;
}

/** The pid of the npm (npx, npm run) process that launched this one, or 0. */
function npmParent(): number {
  return process.env.npm_command || process.env.npm_lifecycle_event ? process.ppid : 0;
}

export function installStopHandlers(log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)): StopFlag {
  let signal: NodeJS.Signals | null = null;
  let first = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal && Date.now() - first < DUPLICATE_MS) return;
    if (signal) {
      log(`locus: second ${sig}: aborting without a checkpoint`);
      process.exit(130);
    }
    signal = sig;
    first = Date.now();
    log(`locus: ${sig} received: finishing this step, writing a checkpoint, then exiting (send it again to abort)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const parent = npmParent();
  const watch =
    parent > 0
      ? setInterval(() => {
          if (signal || process.ppid === parent) return;
          signal = 'SIGTERM';
          first = Date.now();
          log(
            `locus: the npm process that launched this one (pid ${parent}) is gone: finishing this step, writing a checkpoint, then exiting`,
          );
        }, 500)
      : null;
  watch?.unref();
  return {
    get requested() {
      return signal !== null;
    },
    get signal() {
      return signal;
    },
    dispose() {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      if (watch) clearInterval(watch);
    },
  };
}

/** Lets pending signal handlers run: the training step is synchronous, so they only run between steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
