// Geometry of views: hand-worked cases (expected values written out by hand, see the comments)
// and properties. Source 64x64; view A = whole image at 32 px, patch 4 → 8x8 grid of 8-px cells.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { hflip, resizedCrop, rot90 } from '../src/data/augment.js';
import {
  boxToSource,
  boxToView,
  gtsaBoxes,
  intersection,
  locationLabels,
  neighbourTable,
  patchCentres,
  rotateBox,
  rotateGridIndex,
  sampleScrlBoxes,
  sourceToView,
  viewToSource,
} from '../src/data/geometry.js';
import { Rng } from '../src/data/rng.js';
import type { Box, Image, ViewGeometry } from '../src/data/types.js';

const A: ViewGeometry = { box: [0, 0, 64, 64], size: 32, flipped: false, rotation: 0 };
const B = (flipped: boolean, rotation: 0 | 1 | 2 | 3): ViewGeometry => ({
  box: [16, 16, 48, 48],
  size: 32,
  flipped,
  rotation,
});

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-9) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= tol, `index ${i}: ${a[i]} vs ${b[i]}`);
};

// B's patch (r, c) is 4x4 source px (scale 1). Flipped: its centre is source (46 − 4c, 18 + 4r),
// i.e. A-frame (23 − 2c, 9 + 2r): A column [5,5,4,4,3,3,2,2][c], A row [2,2,3,3,4,4,5,5][r].
test('LOCA labels: B (16,16,48,48) flipped in A', () => {
  // biome-ignore format: the 8x8 grid is laid out by hand
  const expected = [
    21, 21, 20, 20, 19, 19, 18, 18,
    21, 21, 20, 20, 19, 19, 18, 18,
    29, 29, 28, 28, 27, 27, 26, 26,
    29, 29, 28, 28, 27, 27, 26, 26,
    37, 37, 36, 36, 35, 35, 34, 34,
    37, 37, 36, 36, 35, 35, 34, 34,
    45, 45, 44, 44, 43, 43, 42, 42,
    45, 45, 44, 44, 43, 43, 42, 42,
  ];
  assert.deepEqual([...locationLabels(A, B(true, 0), 4)], expected);
});

// Rotated 90° CCW (not flipped): output (r, c) ← unrotated (30 − 4r, 4c + 2) → source (46 − 4r, 18 + 4c):
// A column [5,5,4,4,3,3,2,2][r], A row [2,2,3,3,4,4,5,5][c]. The top-left output patch comes from
// B's top-right corner (A cell row 2, col 5 = 21).
test('LOCA labels: B rotated 90° in A', () => {
  // biome-ignore format: the 8x8 grid is laid out by hand
  const expected = [
    21, 21, 29, 29, 37, 37, 45, 45,
    21, 21, 29, 29, 37, 37, 45, 45,
    20, 20, 28, 28, 36, 36, 44, 44,
    20, 20, 28, 28, 36, 36, 44, 44,
    19, 19, 27, 27, 35, 35, 43, 43,
    19, 19, 27, 27, 35, 35, 43, 43,
    18, 18, 26, 26, 34, 34, 42, 42,
    18, 18, 26, 26, 34, 34, 42, 42,
  ];
  assert.deepEqual([...locationLabels(A, B(false, 1), 4)], expected);
});

// Flipped then rotated 90°: source (18 + 4r, 18 + 4c), a transpose of the unflipped, unrotated map.
test('LOCA labels: B flipped and rotated 90° in A', () => {
  // biome-ignore format: the 8x8 grid is laid out by hand
  const expected = [
    18, 18, 26, 26, 34, 34, 42, 42,
    18, 18, 26, 26, 34, 34, 42, 42,
    19, 19, 27, 27, 35, 35, 43, 43,
    19, 19, 27, 27, 35, 35, 43, 43,
    20, 20, 28, 28, 36, 36, 44, 44,
    20, 20, 28, 28, 36, 36, 44, 44,
    21, 21, 29, 29, 37, 37, 45, 45,
    21, 21, 29, 29, 37, 37, 45, 45,
  ];
  assert.deepEqual([...locationLabels(A, B(true, 1), 4)], expected);
});

// Reference = B (unflipped, scale 1, 4-px cells); query = A. A's patch (r, c) centre is source
// (8c + 4, 8r + 4) → reference (8c − 12, 8r − 12): inside for c, r ∈ 2..5, cell 2c − 3.
test('LOCA labels: −1 outside the reference', () => {
  // biome-ignore format: the 8x8 grid is laid out by hand
  const expected = [
    -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1,  9, 11, 13, 15, -1, -1,
    -1, -1, 25, 27, 29, 31, -1, -1,
    -1, -1, 41, 43, 45, 47, -1, -1,
    -1, -1, 57, 59, 61, 63, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1,
  ];
  assert.deepEqual([...locationLabels(B(false, 0), A, 4)], expected);
});

test('patch centres in source coordinates', () => {
  const c = patchCentres(B(true, 0), 4);
  close(c.subarray(0, 4), [46, 18, 42, 18]); // patches 0 and 1
  close(c.subarray(126, 128), [18, 46]); // patch 63
});

// B flipped ∩ D, D = (0,24,40,64) at 32 px (scale 0.8) rotated 90°: the intersection is source
// (16,24,40,48). In B: (0,8,24,32), mirrored → (8,8,32,32) = grid (2,2,8,8). In D: (16,0,40,24)·0.8
// = (12.8,0,32,19.2), rotated (y1, S−x2, y2, S−x1) → (0,0,19.2,19.2) = grid (0,0,4.8,4.8).
// In A: (8,12,20,24) = grid (2,3,5,6).
test('intersection box mapped into each grid', () => {
  const D: ViewGeometry = { box: [0, 24, 40, 64], size: 32, flipped: false, rotation: 1 };
  const inter = intersection(B(true, 0).box, D.box) as Box;
  assert.deepEqual(inter, [16, 24, 40, 48]);
  const grid = (g: ViewGeometry) => boxToView(g, inter).map((v) => v / 4);
  close(grid(B(true, 0)), [2, 2, 8, 8]);
  close(grid(D), [0, 0, 4.8, 4.8], 1e-12);
  close(grid(A), [2, 3, 5, 6]);
  assert.equal(intersection([0, 0, 10, 10], [10, 0, 20, 10]), null);
});

test('neighbour tables (window raster order)', () => {
  const t14 = neighbourTable(14, 14);
  assert.deepEqual([...t14.subarray(0, 8)], [195, 182, 183, 13, 1, 27, 14, 15]);
  assert.deepEqual([...neighbourTable(14, 14, false).subarray(0, 8)], [-1, -1, -1, -1, 1, -1, 14, 15]);
  const t4 = neighbourTable(4, 4);
  const row = (t: Int32Array, i: number) => [...t.subarray(i * 8, i * 8 + 8)];
  assert.deepEqual(row(t4, 0), [15, 12, 13, 3, 1, 7, 4, 5]);
  assert.deepEqual(row(t4, 3), [14, 15, 12, 2, 0, 6, 7, 4]);
  assert.deepEqual(row(t4, 12), [11, 8, 9, 15, 13, 3, 0, 1]);
  assert.deepEqual(row(t4, 15), [10, 11, 8, 14, 12, 2, 3, 0]);
  assert.deepEqual(row(t4, 5), [0, 1, 2, 4, 6, 8, 9, 10]);
  const n4 = neighbourTable(4, 4, false);
  assert.deepEqual(row(n4, 0), [-1, -1, -1, -1, 1, -1, 4, 5]);
  assert.deepEqual(row(n4, 15), [10, 11, -1, 14, -1, -1, -1, -1]);
  assert.deepEqual(row(n4, 5), row(t4, 5));
});

// GTSA's table with S = 32 on box (4, 8, 12, 20).
test('rotateBox matches the rotate_bbox table', () => {
  const b: Box = [4, 8, 12, 20];
  assert.deepEqual(rotateBox(b, 0, 32), [4, 8, 12, 20]);
  assert.deepEqual(rotateBox(b, 1, 32), [8, 20, 20, 28]); // (y1, S−x2, y2, S−x1)
  assert.deepEqual(rotateBox(b, 2, 32), [20, 12, 28, 24]); // (S−x2, S−y2, S−x1, S−y1)
  assert.deepEqual(rotateBox(b, 3, 32), [12, 4, 24, 12]); // (S−y2, x1, S−y1, x2)
  // and boxToView of a rotated view = rotate_bbox of the unrotated one
  const src: Box = [20, 18, 33, 41];
  for (const k of [0, 1, 2, 3] as const) {
    close(boxToView(B(true, k), src), rotateBox(boxToView(B(true, 0), src), k, 32), 1e-12);
  }
});

// CCW: the top row becomes the left column. 2x2 [[0,1],[2,3]] → [[1,3],[0,2]].
test('rotateGridIndex on 2x2, 3x3 and 2x3 grids', () => {
  assert.deepEqual([...rotateGridIndex(2, 2, 0)], [0, 1, 2, 3]);
  assert.deepEqual([...rotateGridIndex(2, 2, 1)], [1, 3, 0, 2]);
  assert.deepEqual([...rotateGridIndex(2, 2, 2)], [3, 2, 1, 0]);
  assert.deepEqual([...rotateGridIndex(2, 2, 3)], [2, 0, 3, 1]);
  assert.deepEqual([...rotateGridIndex(3, 3, 1)], [2, 5, 8, 1, 4, 7, 0, 3, 6]);
  assert.deepEqual([...rotateGridIndex(3, 3, 3)], [6, 3, 0, 7, 4, 1, 8, 5, 2]);
  assert.deepEqual([...rotateGridIndex(2, 3, 1)], [2, 5, 1, 4, 0, 3]);
});

test('rot90 on images agrees with rotateGridIndex and rotated labels', () => {
  const img: Image = { data: Float32Array.from({ length: 12 }, (_, i) => i), width: 3, height: 4, channels: 1 };
  for (const k of [1, 2, 3]) assert.deepEqual([...rot90(img, k).data], [...rotateGridIndex(4, 3, k)]);
  // rotating B by k permutes its label map by rotateGridIndex(8, 8, k)
  const base = locationLabels(A, B(true, 0), 4);
  for (const k of [1, 2, 3] as const) {
    const p = rotateGridIndex(8, 8, k);
    assert.deepEqual(
      [...locationLabels(A, B(true, k), 4)],
      [...p].map((j) => base[j]),
    );
  }
});

function randomGeom(rng: Rng): ViewGeometry {
  const x0 = rng.range(-5, 50);
  const y0 = rng.range(-5, 50);
  return {
    box: [x0, y0, x0 + rng.range(1, 40), y0 + rng.range(1, 40)],
    size: rng.int(4, 64),
    flipped: rng.bool(),
    rotation: rng.int(0, 4) as 0 | 1 | 2 | 3,
  };
}

test('viewToSource ∘ sourceToView round trip (property)', () => {
  const rng = new Rng(7);
  for (let t = 0; t < 2000; t++) {
    const g = randomGeom(rng);
    const p: [number, number] = [rng.range(-10, 80), rng.range(-10, 80)];
    close(viewToSource(g, sourceToView(g, p)), p, 1e-9);
    close(sourceToView(g, viewToSource(g, p)), p, 1e-9);
    const b: Box = [p[0], p[1], p[0] + rng.range(0.1, 9), p[1] + rng.range(0.1, 9)];
    close(boxToSource(g, boxToView(g, b)), b, 1e-9);
  }
  // box corners go to the view's corners
  for (const k of [0, 1, 2, 3] as const) close(boxToView(B(true, k), [16, 16, 48, 48]), [0, 0, 32, 32], 0);
});

test('SCRL boxes lie in both views and cover the same source region', () => {
  const rng = new Rng(11);
  let checked = 0;
  for (let t = 0; t < 300; t++) {
    const g1 = { ...randomGeom(rng), size: 32, rotation: 0 as const };
    const g2 = { ...randomGeom(rng), size: 32, rotation: 0 as const };
    const pairs = sampleScrlBoxes(g1, g2, rng);
    const inter = intersection(g1.box, g2.box);
    if (pairs.length === 0) continue;
    assert.equal(pairs.length, 10);
    assert.ok(inter);
    for (const [b1, b2] of pairs) {
      for (const [b, g] of [
        [b1, g1],
        [b2, g2],
      ] as const) {
        assert.ok(b[0] >= 0 && b[1] >= 0 && b[2] <= g.size && b[3] <= g.size && b[2] > b[0] && b[3] > b[1]);
        assert.ok(Math.min(b[2] - b[0], b[3] - b[1]) >= (32 * 32) / 224 - 1e-9);
      }
      const s1 = boxToSource(g1, b1);
      const s2 = boxToSource(g2, b2);
      close(s1, s2, 1e-6);
      assert.ok(
        s1[0] >= inter[0] - 1e-6 && s1[1] >= inter[1] - 1e-6 && s1[2] <= inter[2] + 1e-6 && s1[3] <= inter[3] + 1e-6,
      );
      checked++;
    }
  }
  assert.ok(checked > 500, `only ${checked} boxes checked`);
  // hand case: B flipped vs A → a box's x-range in B is mirrored: B x = 32 − (source − 16)
  const [[bA, bB]] = sampleScrlBoxes(A, B(true, 0), new Rng(3), { count: 1 }) as [[Box, Box]];
  close([bB[0], bB[2]], [32 - (bA[2] * 2 - 16), 32 - (bA[0] * 2 - 16)], 1e-9);
  // disjoint or too small intersections give no boxes
  assert.deepEqual(sampleScrlBoxes({ ...A, box: [0, 0, 30, 30] }, { ...A, box: [32, 32, 64, 64] }, new Rng(1)), []);
  assert.deepEqual(sampleScrlBoxes({ ...A, box: [0, 0, 40, 40] }, { ...A, box: [36, 36, 64, 64] }, new Rng(1)), []);
});

test('gtsaBoxes: each pairwise intersection in each rotated frame', () => {
  const g0: ViewGeometry = { box: [0, 0, 32, 32], size: 32, flipped: false, rotation: 1 };
  const g1: ViewGeometry = { box: [16, 0, 48, 32], size: 32, flipped: false, rotation: 0 };
  const l: ViewGeometry = { box: [16, 16, 32, 32], size: 16, flipped: false, rotation: 2 };
  const { gc, all } = gtsaBoxes([g0, g1, l]);
  // g0 ∩ g1 = (16,0,32,32): in g0 (16,0,32,32) rotated 90° → (0,0,32,16); in g1 (0,0,16,32).
  close(gc.subarray(4, 8), [0, 0, 32, 16]);
  close(all.subarray(1 * 8, 1 * 8 + 4), [0, 0, 16, 32]);
  // g1 ∩ l = l: in l's frame the whole view (rotation keeps it); in g1 (0,16,16,32).
  close(gc.subarray((1 * 3 + 2) * 4, (1 * 3 + 2) * 4 + 4), [0, 16, 16, 32]);
  close(all.subarray((2 * 2 + 1) * 4, (2 * 2 + 1) * 4 + 4), [0, 0, 16, 16]);
  // g0 ∩ g0: the whole view
  close(gc.subarray(0, 4), [0, 0, 32, 32]);
});

// Image ops follow the geometry: a ramp image R = x/64, G = y/64 (pixel centres), cropped at scale
// 1 then flipped and rotated, must show at each output pixel the source point viewToSource gives.
test('rendered pixels sit where the geometry says', () => {
  const n = 64;
  const src: Image = { data: new Float32Array(n * n * 3), width: n, height: n, channels: 3 };
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      src.data[(y * n + x) * 3] = (x + 0.5) / n;
      src.data[(y * n + x) * 3 + 1] = (y + 0.5) / n;
    }
  }
  for (const k of [0, 1, 2, 3] as const) {
    for (const flipped of [false, true]) {
      const g = B(flipped, k);
      let img = resizedCrop(src, g.box, 32, 32, 'bilinear');
      if (flipped) img = hflip(img);
      img = rot90(img, k);
      for (let r = 0; r < 32; r++) {
        for (let c = 0; c < 32; c++) {
          const [x, y] = viewToSource(g, [c + 0.5, r + 0.5]);
          close([img.data[(r * 32 + c) * 3] as number, img.data[(r * 32 + c) * 3 + 1] as number], [x / n, y / n], 1e-6);
        }
      }
    }
  }
  // downscaling (antialiased triangle filter) is exact on a ramp away from the border
  const small = resizedCrop(src, [0, 0, 64, 64], 32, 32, 'bilinear');
  close(
    [small.data[(10 * 32 + 7) * 3] as number, small.data[(10 * 32 + 7) * 3 + 1] as number],
    [15 / 64, 21 / 64],
    1e-6,
  );
});
