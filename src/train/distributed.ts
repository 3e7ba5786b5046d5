// Data-parallel training over libtorch's c10d (ProcessGroupGloo, or ProcessGroupNCCL in a CUDA build with
// NCCL, + TCPStore): gradient all-reduce in buckets, parameter broadcast, and naming the rank that was lost
// when a collective fails.
//
// libtorch's C++ API has no DistributedDataParallel, so the reducer is written here (thin, on the engine):
// after backward, gradients are flattened into ~bucketMb buckets, summed across ranks and divided by the
// world size. No overlap with backward: the engine's backward() is one native call, so there is no hook
// point between layers; buckets still cut the number of collectives to a handful per step.

import { flattenGrads, noGrad, type Tensor, unflattenGrads } from '../engine/index.js';
import { buildFlags, type DistBackend, type Handle, native } from '../engine/native.js';
import type { Collectives } from '../methods/method.js';
import type { Module } from '../nn/index.js';

export interface DistOptions {
  rank: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** How long a collective (and the rendezvous) may wait for a silent peer. */
  timeoutMs: number;
  bucketMb?: number;
  /** c10d backend; default: 'nccl' when `device` is cuda and the build has NCCL, else 'gloo'. */
  backend?: DistBackend;
  /** The run's device ('cpu', 'cuda', 'cuda:N'): decides the default backend. */
  device?: string;
  /** This process's index on its machine (LOCAL_RANK; default: rank): a cuda run uses device cuda:<localRank>. */
  localRank?: number;
}

/** The backend for a run on `device`: NCCL for CUDA tensors when the build has it, else Gloo. */
export function defaultBackend(device = 'cpu'): DistBackend {
  return device.startsWith('cuda') && buildFlags().nccl ? 'nccl' : 'gloo';
}

/** Reads the usual torch.distributed environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). */
export function distFromEnv(env = process.env): DistOptions | null {
  const world = Number(env.WORLD_SIZE ?? 1);
  if (!(world > 1)) return null;
  const rank = Number(env.RANK ?? -1);
  if (!(Number.isInteger(rank) && rank >= 0 && rank < world))
    throw new Error(`distributed: RANK must be an integer in [0, ${world}) (got ${env.RANK})`);
  const localRank = env.LOCAL_RANK === undefined ? rank : Number(env.LOCAL_RANK);
  if (!(Number.isInteger(localRank) && localRank >= 0))
    throw new Error(`distributed: LOCAL_RANK must be a non-negative integer (got ${env.LOCAL_RANK})`);
  return {
    rank,
    worldSize: world,
    masterAddr: env.MASTER_ADDR ?? '127.0.0.1',
    masterPort: Number(env.MASTER_PORT ?? 29500),
    timeoutMs: Number(env.LOCUS_DIST_TIMEOUT_MS ?? 60_000),
    localRank,
  };
}

export class LostRankError extends Error {
  constructor(
    readonly lost: number[],
    cause: string,
  ) {
    super(
      `distributed: lost rank${lost.length === 1 ? '' : 's'} ${lost.join(', ') || '(unknown)'}; stopping (${cause.split('\n')[0]})`,
    );
  }
}

export class Distributed implements Collectives {
  readonly rank: number;
  readonly worldSize: number;
  readonly localRank: number;
  readonly backend: DistBackend;
  readonly #pg: Handle;
  readonly #bucketElems: number;
  /** Seconds spent in gradient all-reduce (for the overhead benchmark). */
  allReduceSeconds = 0;

  constructor(readonly o: DistOptions) {
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.localRank = o.localRank ?? o.rank;
    this.backend = o.backend ?? defaultBackend(o.device);
    if (this.backend === 'nccl' && !buildFlags().nccl)
      throw new Error(
        "distributed: backend 'nccl' is not in this build: the addon was built without NCCL (it needs a CUDA libtorch with NCCL; locus info shows the build); use backend 'gloo'",
      );
    try {
      this.#pg = native.pgInit(o.rank, o.worldSize, o.masterAddr, o.masterPort, o.timeoutMs, this.backend);
    } catch (e) {
      throw new Error(
        `distributed: rank ${o.rank} could not join ${o.masterAddr}:${o.masterPort} (world ${o.worldSize}) within ${o.timeoutMs} ms: ${(e as Error).message.split('\n')[0]}`,
      );
    }
    this.#bucketElems = Math.max(1, Math.floor(((o.bucketMb ?? 25) * 2 ** 20) / 4));
  }

  get isMain(): boolean {
    return this.rank === 0;
  }

  /** Runs a collective; on failure finds out which ranks are gone and throws LostRankError. */
  #collective(fn: () => void): void {
    try {
      fn();
    } catch (e) {
      throw new LostRankError(this.#findLost(), (e as Error).message);
    }
  }

  // Every survivor marks itself in the store; ranks that never do are the lost ones. If the store
  // itself is unreachable, rank 0 (which hosts it) is gone.
  #findLost(): number[] {
    try {
      native.storeSet(this.#pg, `locus/abort/${this.rank}`, '1');
    } catch {
      return this.rank === 0 ? [] : [0];
    }
    const others = [...Array(this.worldSize).keys()].filter((r) => r !== this.rank);
    const deadline = Date.now() + Math.min(5000, this.o.timeoutMs);
    let missing = others;
    while (Date.now() < deadline) {
      try {
        missing = missing.filter((r) => !native.storeCheck(this.#pg, [`locus/abort/${r}`]));
      } catch {
        return [0];
      }
      if (missing.length === 0) break;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
    return missing;
  }

  allReduceMean(t: Tensor): void {
    this.#collective(() => native.pgAllreduce(this.#pg, [t.handle], 'sum'));
    noGrad(() => t.div_(this.worldSize));
  }

  allReduceSum(t: Tensor): void {
    this.#collective(() => native.pgAllreduce(this.#pg, [t.handle], 'sum'));
  }

  /** Averages the gradients of params across ranks, in buckets of about bucketMb. */
  syncGradients(params: Tensor[]): void {
    const t0 = performance.now();
    let bucket: Tensor[] = [];
    let elems = 0;
    const flush = () => {
      if (bucket.length === 0) return;
      const flat = flattenGrads(bucket);
      this.#collective(() => native.pgAllreduce(this.#pg, [flat.handle], 'sum'));
      noGrad(() => flat.div_(this.worldSize));
      unflattenGrads(bucket, flat);
      flat.dispose();
      bucket = [];
      elems = 0;
    };
    for (const p of params) {
      bucket.push(p);
      elems += p.numel;
      if (elems >= this.#bucketElems) flush();
    }
    flush();
    this.allReduceSeconds += (performance.now() - t0) / 1000;
  }

  /** Copies rank 0's parameters and buffers into every rank's module(s). */
  broadcastModules(modules: (Module | null)[]): void {
    const ts = modules.flatMap((m) => (m ? [...m.stateDict().values()] : []));
    this.#collective(() =>
      noGrad(() =>
        native.pgBroadcast(
          this.#pg,
          ts.map((t) => t.handle),
          0,
        ),
      ),
    );
  }

  barrier(): void {
    this.#collective(() => native.pgBarrier(this.#pg));
  }

  close(): void {
    native.pgDestroy(this.#pg);
  }
}

/** One process: collectives are identities. */
export const SINGLE_PROCESS: Collectives = {
  worldSize: 1,
  allReduceMean: () => {},
};
