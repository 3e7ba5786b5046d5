// Loads the libtorch addon (built by `npm run setup`) and sets the thread count to the machine's cores.
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

/** An opaque handle on a libtorch tensor (an N-API External). */
export type Handle = { readonly __handle: unique symbol };

// biome-ignore lint/suspicious/noExplicitAny: the addon's functions are typed by the Tensor wrapper.
export type Native = Record<string, (...args: any[]) => any>;

const require = createRequire(import.meta.url);
function load(): Native {
  try {
    return require('../../../addon/build/Release/locus.node') as Native;
  } catch (e) {
    throw new Error(
      `Locus native addon is not built or cannot load (${(e as Error).message.split('\n')[0]}). Run \`npm run setup\` first.`,
    );
  }
}

export const native: Native = load();

/** What the addon was compiled with (addon/binding.gyp): a CUDA libtorch, and the c10d backends. */
export interface BuildFlags {
  /** Linked against a CUDA libtorch (LOCUS_LIBTORCH with libtorch_cuda.so); a GPU may still be absent at run time. */
  cuda: boolean;
  /** c10d ProcessGroupGloo (CPU and CUDA tensors). */
  gloo: boolean;
  /** c10d ProcessGroupNCCL (CUDA tensors; a CUDA libtorch with NCCL). */
  nccl: boolean;
}
/** c10d process-group backends: `native.pgInit(rank, world, host, port, timeoutMs, backend)`. */
export type DistBackend = 'gloo' | 'nccl';

export function buildFlags(): BuildFlags {
  // An addon built before these flags existed was built against Debian's CPU libtorch, with Gloo.
  if (typeof native.buildFlags !== 'function') return { cuda: false, gloo: true, nccl: false };
  return native.buildFlags() as BuildFlags;
}

/** Threads libtorch uses for intra-op parallelism (libtorch starts with 1 here; default: all cores). */
export function setNumThreads(n: number): void {
  native.setNumThreads(Math.max(1, Math.floor(n)));
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
setNumThreads(Number(process.env.LOCUS_THREADS) || availableParallelism());
