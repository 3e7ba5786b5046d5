// The engine: libtorch tensors, autograd and multi-tensor kernels, driven from TypeScript.

export * from './kernels.js';
export { getNumThreads, setNumThreads } from './native.js';
export * from './ops.js';
export * from './tensor.js';
