// SIGINT/SIGTERM during training: the first asks the loop to stop after the current step and write a
// checkpoint (exit 0); a second one aborts at once (exit 130) without a checkpoint.

export interface StopFlag {
  readonly requested: boolean;
  readonly signal: NodeJS.Signals | null;
  /** Removes the handlers. */
  dispose(): void;
}

export function installStopHandlers(log: (msg: string) => void = (m) => process.stderr.write(`${m}\n`)): StopFlag {
  let signal: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (signal) {
      log(`locus: second ${sig}: aborting without a checkpoint`);
      process.exit(130);
    }
    signal = sig;
    log(`locus: ${sig} received: finishing this step, writing a checkpoint, then exiting (send it again to abort)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
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
    },
  };
}

/** Lets pending signal handlers run: the training step is synchronous, so they only run between steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((r) => setImmediate(r));
}
