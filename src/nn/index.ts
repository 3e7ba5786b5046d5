// nn: modules, layers, the Vision Transformer, optimizers and schedules.

export * from './attention.js';
export * from './init.js';
export * from './layers.js';
export * from './module.js';
export * from './optim.js';
export * from './presets.js';
export * from './schedules.js';
export * from './vit.js';
