// The seg eval's picture samples, stored inside the run (evals/seg_samples.safetensors): the first few
// test images and their ground-truth masks, so that the report draws its pictures from the run
// directory alone and never re-opens a dataset path named in evals/seg.json. Small and bounded: at most
// MAX_SAMPLES images and MAX_SAMPLE_BYTES in all (fewer images when they are large).
import type { Image } from '../data/types.js';
import { readSafetensorsFileSync, stEntryFrom, stTypedArray, writeSafetensorsFileSync } from '../engine/safetensors.js';
import type { MaskSet } from './common.js';

export const SEG_SAMPLES_FILE = 'seg_samples.safetensors';
export const MAX_SAMPLES = 4;
export const MAX_SAMPLE_BYTES = 4 << 20;

export interface PictureSamples {
  images: Image[];
  masks: Uint8Array[] | null;
  classes: number; // mask classes (256 when unknown)
}

/** Stores the first images and masks of a seg test set next to the seg head (`dir`/seg_samples.safetensors). */
export async function saveSegSamples(path: string, test: MaskSet, count = MAX_SAMPLES): Promise<number> {
  const entries: Record<string, ReturnType<typeof stEntryFrom>> = {};
  let bytes = 0;
  let n = 0;
  for (let i = 0; i < Math.min(count, test.n, MAX_SAMPLES); i++) {
    const img = await test.image(i);
    const mask = test.masks[i] as Uint8Array;
    const size = img.data.byteLength + mask.byteLength;
    if (bytes + size > MAX_SAMPLE_BYTES) break;
    bytes += size;
    entries[`image.${i}`] = stEntryFrom('F32', [img.height, img.width, img.channels], img.data);
    entries[`mask.${i}`] = stEntryFrom('U8', [test.height, test.width], mask);
    n++;
  }
  writeSafetensorsFileSync(path, entries, { count: String(n), classes: String(test.classes) });
  return n;
}

/** Reads stored samples; errors name the file. */
export function loadSegSamples(path: string): PictureSamples {
  let f: ReturnType<typeof readSafetensorsFileSync>;
  try {
    f = readSafetensorsFileSync(path);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message.split('\n')[0]}`);
  }
  const n = Math.min(Number(f.metadata.count ?? 0), MAX_SAMPLES);
  const images: Image[] = [];
  const masks: Uint8Array[] = [];
  for (let i = 0; i < n; i++) {
    const im = f.entries[`image.${i}`];
    const m = f.entries[`mask.${i}`];
    if (!im || !m || im.dtype !== 'F32' || m.dtype !== 'U8' || im.shape.length !== 3)
      throw new Error(`${path}: sample ${i} is missing or malformed`);
    const [height, width, channels] = im.shape as [number, number, number];
    if (m.shape[0] !== height || m.shape[1] !== width)
      throw new Error(`${path}: mask ${i} is ${m.shape.join('x')}, its image ${height}x${width}`);
    images.push({ data: Float32Array.from(stTypedArray(im) as Float32Array), width, height, channels });
    masks.push(Uint8Array.from(stTypedArray(m) as Uint8Array));
  }
  return { images, masks, classes: Number(f.metadata.classes ?? 256) };
}
