// The engine: libtorch tensors, autograd and multi-tensor kernels, driven from TypeScript.
export { getNumThreads, setNumThreads } from './native.js';
export * from './tensor.js';
export * from './ops.js';
export * from './kernels.js';
