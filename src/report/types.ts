// The report's input: runs with their config, metrics, eval records and pictures.
import type { GrayMap, LabelMap, RgbMap } from './images.js';

export type { GrayMap, LabelMap, RgbMap } from './images.js';

export interface ReportPicture {
  input: RgbMap;
  attention?: GrayMap[]; // one per head, last-layer CLS attention
  pca?: RgbMap; // PCA of patch features as RGB
  segPred?: LabelMap;
  segGt?: LabelMap;
}

export interface ReportRun {
  name: string; // e.g. "dino-seed0"
  method: string; // e.g. "dino", "loca"
  config: Record<string, unknown>; // resolved config
  metrics: Array<Record<string, number>>; // JSONL rows: step, loss, loss parts, lr, wd, ...
  /**
   * Eval records by file stem: `<probe>@<dataset>` and `<probe>_random_init@<dataset>` (older runs: `<probe>`,
   * `<probe>_random_init`). The probe, dataset and baseline are read from each record (kind, data.test,
   * checkpoint.method), the stem filling in what a record lacks.
   */
  evals: Record<string, Record<string, unknown>>;
  pictures?: { images: ReportPicture[] };
  /** Locus version, commit, libtorch and device from config.json, where the run recorded them. */
  provenance?: Record<string, unknown> | null;
}

export interface ReportOptions {
  title?: string;
  generatedAt?: Date;
  /** Display size of a picture tile in CSS px (maps are upscaled nearest-neighbour to at least this). */
  tileSize?: number;
}
