// The engine: libtorch tensors, autograd and multi-tensor kernels, driven from TypeScript.

export * from './amp.js';
export * from './fused.js';
export * from './kernels.js';
export { getNumThreads, setNumThreads } from './native.js';
export * from './ops.js';
export * from './scope.js';
export * from './tensor.js';
