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

/** Threads libtorch uses for intra-op parallelism (libtorch starts with 1 here; default: all cores). */
export function setNumThreads(n: number): void {
  native.setNumThreads(Math.max(1, Math.floor(n)));
}
export function getNumThreads(): number {
  return native.getNumThreads();
}
setNumThreads(Number(process.env.LOCUS_THREADS) || availableParallelism());
