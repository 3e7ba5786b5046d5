// Parallel, deterministic batch loader.
//
// API: `for await (const batch of loader.epoch(e))` iterates one epoch of this rank's batches
// (chosen over a random-access `batch(step)`: it lets prefetch run ahead in order).
//
// Determinism: sample i of epoch e is augmented with Rng(deriveSeed(seed, AUG_STREAM, e, i)) and
// nothing else, so batches are byte-identical for any number of workers (0 = in-process).
//
// Order and sharding (the precise rule, see `rankBatches`): the epoch order is a Fisher-Yates
// shuffle of [0, N) by Rng(deriveSeed(seed, SHUFFLE_STREAM, e)) (identity without shuffle).
// Rank r of W takes order positions r, r+W, r+2W, … (torch's DistributedSampler); its batch k holds
// positions kWB + iW + r, i < B. So step k of W ranks with batch B covers exactly the positions
// [kWB, (k+1)WB) that one rank with batch W·B covers at step k; the single-rank batch is the
// *sample-major interleave* of the rank batches (row i·W + r = rank r's row i). Rank-major
// concatenation gives the same samples in a different row order. dropLast (default true) drops the
// last incomplete global batch (N mod W·B positions); without it the order is first padded by
// repeating its beginning to a multiple of W (as DistributedSampler), so every rank gets the same
// number of batches, the last one possibly shorter than B.
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { type Dataset, type DatasetSpec, openDataset } from './datasets.js';
import { deriveSeed, Rng } from './rng.js';
import type { SkippedFile } from './spec.js';
import { type ViewRecipe, validateRecipe } from './views.js';
import { type Batch, buildBatch, type WorkerInit, type WorkerReply, type WorkerTask } from './worker.js';

export type { Batch } from './worker.js';

export const SHUFFLE_STREAM = 0x53485546;

export interface LoaderOptions {
  dataset: DatasetSpec;
  views: ViewRecipe;
  batchSize: number;
  seed: number;
  /** worker threads; 0 = build batches in this thread. Default: os.availableParallelism(). */
  workers?: number;
  /** batches requested ahead of the consumer (including the one awaited). Default 2·workers. */
  prefetch?: number;
  shuffle?: boolean; // default true
  dropLast?: boolean; // default true
  rank?: number; // default 0
  worldSize?: number; // default 1
  /** Called once per bad file the dataset skips (at open, and while building batches in any thread). */
  onSkip?: (s: SkippedFile) => void;
}

/** The epoch's index order: a seeded permutation of [0, n), or the identity. */
export function epochOrder(n: number, seed: number, epoch: number, shuffle = true): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  return shuffle ? new Rng(deriveSeed(seed, SHUFFLE_STREAM, epoch)).shuffle(order) : order;
}

/** This rank's batches (lists of dataset indices) for an epoch order; the rule is in the file header. */
export function rankBatches(
  order: number[],
  batchSize: number,
  rank: number,
  worldSize: number,
  dropLast: boolean,
): number[][] {
  const W = worldSize;
  const B = batchSize;
  const out: number[][] = [];
  if (dropLast) {
    const steps = Math.floor(order.length / (W * B));
    for (let k = 0; k < steps; k++) {
      out.push(Array.from({ length: B }, (_, i) => order[(k * B + i) * W + rank] as number));
    }
    return out;
  }
  const L = Math.ceil(order.length / W); // this rank's stream length after padding
  const at = (p: number) => order[p % order.length] as number;
  for (let s = 0; s < L; s += B) {
    const n = Math.min(B, L - s);
    out.push(Array.from({ length: n }, (_, i) => at((s + i) * W + rank)));
  }
  return out;
}

interface Task extends WorkerTask {
  token: object; // the epoch iteration that asked
  resolve(b: Batch): void;
  reject(e: Error): void;
}

interface Slot {
  worker: Worker;
  task: Task | null;
}

class Pool {
  private slots: Slot[] = [];
  private queue: Task[] = [];
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;

  constructor(n: number, init: WorkerInit) {
    for (let i = 0; i < n; i++) {
      const worker = new Worker(new URL('./worker.js', import.meta.url), { workerData: init });
      worker.unref(); // ref'd only while it holds a task: a forgotten close() never hangs the process
      const slot: Slot = { worker, task: null };
      worker.on('message', (m: WorkerReply) => this.onReply(slot, m));
      worker.on('error', (e) => this.fail(new Error(`data loader worker ${i} crashed: ${e.message}`, { cause: e })));
      worker.on('exit', (code) => {
        if (!this.closing) this.fail(new Error(`data loader worker ${i} exited unexpectedly (code ${code})`));
      });
      this.slots.push(slot);
    }
  }

  submit(token: object, epoch: number, indices: number[]): Promise<Batch> {
    return new Promise<Batch>((resolve, reject) => {
      if (this.failure) return reject(this.failure);
      if (this.closing) return reject(new Error('data loader is closed'));
      this.queue.push({ id: this.nextId++, token, epoch, indices, resolve, reject });
      this.pump();
    });
  }

  /** Drop the queued (not yet started) tasks of an iteration. */
  cancel(token: object): void {
    const keep: Task[] = [];
    for (const t of this.queue) {
      if (t.token === token) t.reject(new Error('cancelled'));
      else keep.push(t);
    }
    this.queue = keep;
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (slot.task || this.queue.length === 0) continue;
      const t = this.queue.shift() as Task;
      slot.task = t;
      slot.worker.ref();
      slot.worker.postMessage({ id: t.id, epoch: t.epoch, indices: t.indices } satisfies WorkerTask);
    }
  }

  private onReply(slot: Slot, m: WorkerReply): void {
    const t = slot.task;
    slot.task = null;
    slot.worker.unref();
    if (t && t.id === m.id) {
      if ('batch' in m) t.resolve(m.batch);
      else {
        const e = new Error(m.error.message);
        if (m.error.stack) e.stack = m.error.stack;
        t.reject(e);
      }
    }
    this.pump();
  }

  private fail(e: Error): void {
    if (this.failure || this.closing) return;
    this.failure = e;
    for (const s of this.slots) {
      s.task?.reject(e);
      s.task = null;
    }
    for (const t of this.queue) t.reject(e);
    this.queue = [];
  }

  async close(): Promise<void> {
    this.closing = true;
    const err = new Error('data loader is closed');
    for (const t of this.queue) t.reject(err);
    this.queue = [];
    for (const s of this.slots) s.task?.reject(err);
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
    this.slots = [];
  }
}

export class Loader {
  readonly batchSize: number;
  readonly seed: number;
  readonly workers: number;
  readonly prefetch: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly rank: number;
  readonly worldSize: number;
  readonly recipe: ViewRecipe;
  private readonly spec: DatasetSpec;
  private readonly onSkip?: LoaderOptions['onSkip'];
  private dataset: Promise<Dataset> | null = null;
  private pool: Pool | null = null;
  private closed = false;

  constructor(o: LoaderOptions) {
    this.spec = o.dataset;
    this.onSkip = o.onSkip;
    this.recipe = validateRecipe(o.views);
    this.batchSize = o.batchSize;
    this.seed = o.seed;
    this.workers = o.workers ?? availableParallelism();
    this.prefetch = Math.max(1, o.prefetch ?? 2 * this.workers);
    this.shuffle = o.shuffle ?? true;
    this.dropLast = o.dropLast ?? true;
    this.rank = o.rank ?? 0;
    this.worldSize = o.worldSize ?? 1;
    const int = (name: string, v: number, min: number) => {
      if (!(Number.isInteger(v) && v >= min)) throw new Error(`Loader: ${name} must be an integer ≥ ${min} (got ${v})`);
    };
    int('batchSize', this.batchSize, 1);
    int('workers', this.workers, 0);
    int('worldSize', this.worldSize, 1);
    int('rank', this.rank, 0);
    if (this.rank >= this.worldSize) throw new Error(`Loader: rank ${this.rank} must be < worldSize ${this.worldSize}`);
  }

  /** The dataset, opened once in this thread (its resolved spec is what workers re-open). */
  open(): Promise<Dataset> {
    if (this.closed) return Promise.reject(new Error('data loader is closed'));
    this.dataset ??= openDataset(this.spec).then((ds) => {
      for (const s of ds.skipped ?? []) this.onSkip?.(s);
      return ds;
    });
    return this.dataset;
  }

  async length(): Promise<number> {
    return (await this.open()).length;
  }

  /** This rank's dataset-index batches for epoch e. */
  async plan(epoch: number): Promise<number[][]> {
    const n = await this.length();
    return rankBatches(
      epochOrder(n, this.seed, epoch, this.shuffle),
      this.batchSize,
      this.rank,
      this.worldSize,
      this.dropLast,
    );
  }

  async stepsPerEpoch(): Promise<number> {
    return (await this.plan(0)).length;
  }

  /** Iterate this rank's batches of epoch e in order. Breaking out cancels the queued work. */
  async *epoch(epoch: number): AsyncGenerator<Batch, void, undefined> {
    const ds = await this.open();
    const batches = await this.plan(epoch);
    if (this.workers === 0) {
      for (const idx of batches) yield this.reportSkips(await buildBatch(ds, this.recipe, this.seed, epoch, idx));
      return;
    }
    this.pool ??= new Pool(this.workers, { locusLoader: true, dataset: ds.spec, recipe: this.recipe, seed: this.seed });
    const pool = this.pool;
    const token = {};
    const pending: (Promise<Batch> | undefined)[] = [];
    let next = 0;
    try {
      for (let k = 0; k < batches.length; k++) {
        for (; next < batches.length && next < k + this.prefetch; next++) {
          const p = pool.submit(token, epoch, batches[next] as number[]);
          p.catch(() => {}); // awaited below in order; avoids unhandled rejections of abandoned ones
          pending[next] = p;
        }
        const b = await (pending[k] as Promise<Batch>);
        pending[k] = undefined;
        yield this.reportSkips(b);
      }
    } finally {
      pool.cancel(token);
    }
  }

  private reportSkips(b: Batch): Batch {
    for (const s of b.skipped ?? []) this.onSkip?.(s);
    return b;
  }

  /** Stop the worker threads. The loader cannot be used afterwards. */
  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    await pool?.close();
  }
}
