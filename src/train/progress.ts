// Training progress on stderr: a cli-progress bar (step, loss, images/s, ETA) on a TTY, plain periodic
// lines otherwise (CI logs, pipes). stdout stays free for results.
import cliProgress from 'cli-progress';

export interface ProgressValues {
  loss: number;
  imagesPerS: number;
  lr: number;
}

export interface Progress {
  start(total: number, initial: number): void;
  update(step: number, v: ProgressValues): void;
  /** A message line that does not break the bar. */
  log(msg: string): void;
  stop(): void;
}

export function fmtDuration(s: number): string {
  if (!Number.isFinite(s) || s < 0) return '?';
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.floor(s % 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

/** ETA from the mean step time since start (steps resumed from a checkpoint do not count). */
class Eta {
  private t0 = performance.now();
  private s0 = 0;
  reset(step: number) {
    this.t0 = performance.now();
    this.s0 = step;
  }
  seconds(step: number, total: number): number {
    const done = step - this.s0;
    return done > 0 ? (((performance.now() - this.t0) / 1000) * (total - step)) / done : Number.NaN;
  }
}

class BarProgress implements Progress {
  private bar = new cliProgress.SingleBar(
    {
      format: 'step {value}/{total} |{bar}| loss {loss} | {ips} img/s | lr {lr} | ETA {etaText}',
      barsize: 24,
      hideCursor: true,
      stream: process.stderr,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  );
  private eta = new Eta();
  private total = 0;
  start(total: number, initial: number) {
    this.total = total;
    this.eta.reset(initial);
    this.bar.start(total, initial, { loss: '-', ips: '-', lr: '-', etaText: '?' });
  }
  update(step: number, v: ProgressValues) {
    this.bar.update(step, {
      loss: v.loss.toFixed(4),
      ips: v.imagesPerS.toFixed(1),
      lr: v.lr.toExponential(2),
      etaText: fmtDuration(this.eta.seconds(step, this.total)),
    });
  }
  log(msg: string) {
    // clear the bar's line, print, let the bar redraw below
    process.stderr.write(`\r\x1b[K${msg}\n`);
  }
  stop() {
    this.bar.stop();
  }
}

class LineProgress implements Progress {
  private eta = new Eta();
  private total = 0;
  constructor(private every: number) {}
  start(total: number, initial: number) {
    this.total = total;
    this.eta.reset(initial);
    process.stderr.write(`training: step ${initial}/${total}\n`);
  }
  update(step: number, v: ProgressValues) {
    if (step % this.every !== 0 && step !== this.total) return;
    const eta = fmtDuration(this.eta.seconds(step, this.total));
    process.stderr.write(
      `step ${step}/${this.total}  loss ${v.loss.toFixed(4)}  lr ${v.lr.toExponential(2)}  ${v.imagesPerS.toFixed(1)} img/s  ETA ${eta}\n`,
    );
  }
  log(msg: string) {
    process.stderr.write(`${msg}\n`);
  }
  stop() {}
}

class SilentProgress implements Progress {
  start() {}
  update() {}
  log(msg: string) {
    process.stderr.write(`${msg}\n`);
  }
  stop() {}
}

export function createProgress(mode: 'auto' | 'bar' | 'plain' | 'none', printEvery: number): Progress {
  const m = mode === 'auto' ? (process.stderr.isTTY ? 'bar' : 'plain') : mode;
  return m === 'bar' ? new BarProgress() : m === 'plain' ? new LineProgress(printEvery) : new SilentProgress();
}
