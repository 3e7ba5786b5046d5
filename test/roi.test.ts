// RoIAlign (src/methods/roi.ts) against hand-computed bilinear values, an independent float64 loop
// implementation of torchvision's semantics written here, and torchvision itself when /usr/bin/python3 has it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import test from 'node:test';
import { tensor } from '../src/engine/index.js';
import { roiAlign } from '../src/methods/roi.js';

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol: number, what = '') => {
  assert.equal(a.length, b.length, `${what}: length`);
  for (let i = 0; i < a.length; i++)
    assert.ok(Math.abs((a[i] as number) - (b[i] as number)) <= tol, `${what}[${i}]: ${a[i]} vs ${b[i]}`);
};

// 4x4 map with v(y, x) = 4y + x: bilinear interpolation of this linear function is exact, so a bin's
// value is 4·mean(y) + mean(x) over its (clamped) sample points.
const ramp = () =>
  tensor(
    Array.from({ length: 16 }, (_, i) => i),
    [1, 1, 4, 4],
    { dtype: 'float64' },
  );

test('roiAlign: 1x1 output, aligned False and True, hand-computed', () => {
  // aligned=False, box (0,0)-(2,2): 2x2 samples at 0.5, 1.5 → mean y = mean x = 1 → 4 + 1 = 5.
  close(roiAlign(ramp(), [[0, 0, 0, 2, 2]], { outputSize: 1 }).toNumbers(), [5], 1e-12, 'unaligned');
  // aligned=True shifts by −0.5: samples at 0, 1 → mean 0.5 → 2 + 0.5 = 2.5.
  close(roiAlign(ramp(), [[0, 0, 0, 2, 2]], { outputSize: 1, aligned: true }).toNumbers(), [2.5], 1e-12, 'aligned');
  // spatialScale: the same box given in pixels of a 4-px patch.
  close(roiAlign(ramp(), [[0, 0, 0, 8, 8]], { outputSize: 1, spatialScale: 0.25 }).toNumbers(), [5], 1e-12, 'scaled');
});

test('roiAlign: 2x2 output with edge clamping, hand-computed', () => {
  // aligned=False, box (0,0)-(4,4): bins of 2, 2 samples each: 0.5, 1.5 | 2.5, 3.5→3 (snaps to the last row/col).
  // mean over a bin: 1 for the first, (2.5 + 3)/2 = 2.75 for the second.
  const u = roiAlign(ramp(), [[0, 0, 0, 4, 4]], { outputSize: 2 });
  assert.deepEqual(u.shape, [1, 1, 2, 2]);
  close(u.toNumbers(), [4 * 1 + 1, 4 * 1 + 2.75, 4 * 2.75 + 1, 4 * 2.75 + 2.75], 1e-12, 'unaligned 2x2');
  // aligned=True: samples at 0, 1 | 2, 3 → means 0.5 and 2.5.
  const a = roiAlign(ramp(), [[0, 0, 0, 4, 4]], { outputSize: 2, aligned: true });
  close(a.toNumbers(), [4 * 0.5 + 0.5, 4 * 0.5 + 2.5, 4 * 2.5 + 0.5, 4 * 2.5 + 2.5], 1e-12, 'aligned 2x2');
});

test('roiAlign: a bilinear sample of a non-linear map, the legacy 1-cell minimum, empty samples', () => {
  const m = tensor([1, 2, 3, 5], [1, 1, 2, 2], { dtype: 'float64' });
  // aligned=False forces the 0.5-wide box to 1 cell: one sample at (0.75, 0.75):
  // 0.25·0.25·1 + 0.25·0.75·2 + 0.75·0.25·3 + 0.75·0.75·5 = 3.8125.
  close(roiAlign(m, [[0, 0.25, 0.25, 0.75, 0.75]], { outputSize: 1 }).toNumbers(), [3.8125], 1e-12, 'min size');
  // Explicit sampling ratio 1 on a 2x2 box: one sample at the centre (1, 1) → clamps to the last cell = 5.
  close(roiAlign(m, [[0, 0, 0, 2, 2]], { outputSize: 1, samplingRatio: 1 }).toNumbers(), [5], 1e-12, 'ratio 1');
  // A box entirely above the map (samples at y < −1) pools nothing: 0.
  close(roiAlign(m, [[0, 0, -4, 2, -2]], { outputSize: 1 }).toNumbers(), [0], 1e-12, 'outside');
});

test('roiAlign: boxes of several images keep their order; no boxes give [0, C, h, w]', () => {
  const x = tensor(
    Array.from({ length: 3 * 2 * 16 }, (_, i) => (i % 16) + 100 * Math.floor(i / 16)),
    [3, 2, 4, 4],
    { dtype: 'float64' },
  );
  const boxes = [
    [2, 0, 0, 2, 2],
    [0, 0, 0, 2, 2],
    [2, 0, 0, 4, 4],
  ];
  const out = roiAlign(x, boxes, { outputSize: 1 });
  assert.deepEqual(out.shape, [3, 2, 1, 1]);
  // image b channel c holds 100·(2b + c) + ramp; the 4x4 box has 4 samples per side: 0.5, 1.5, 2.5, 3.5→3 (mean 1.875).
  const m = 4 * 1.875 + 1.875;
  close(out.toNumbers(), [405, 505, 5, 105, 400 + m, 500 + m], 1e-12, 'order');
  const empty = roiAlign(x, [], { outputSize: 3 });
  assert.deepEqual(empty.shape, [0, 2, 3, 3]);
  assert.throws(() => roiAlign(x, [[3, 0, 0, 1, 1]], { outputSize: 1 }), /batch index 3/);
});

test('roiAlign: the gradient w.r.t. the map is the bilinear weights', () => {
  const x = tensor(new Float64Array(16), [1, 1, 4, 4], { dtype: 'float64' }).requiresGrad_(true);
  roiAlign(x, [[0, 0, 0, 2, 2]], { outputSize: 1 })
    .sum()
    .backward();
  // 4 samples at (0.5|1.5, 0.5|1.5), each a quarter on its 4 neighbours, averaged (/4).
  const g = (x.grad as NonNullable<typeof x.grad>).toNumbers();
  const want = [1, 2, 1, 0, 2, 4, 2, 0, 1, 2, 1, 0, 0, 0, 0, 0].map((v) => v / 16);
  close(g, want, 1e-12, 'grad');
});

/** torchvision's roi_align semantics written as plain loops (float64), independently of src/methods/roi.ts. */
function refRoiAlign(
  x: Float64Array,
  [B, C, H, W]: number[],
  boxes: number[][],
  out: number,
  scale: number,
  ratio: number,
  aligned: boolean,
): number[] {
  void B;
  const res: number[] = [];
  const at = (b: number, c: number, y: number, xx: number) => x[((b * C + c) * H + y) * W + xx] as number;
  const sample = (b: number, c: number, y: number, xx: number) => {
    if (y < -1 || y > H || xx < -1 || xx > W) return 0;
    y = Math.max(y, 0);
    xx = Math.max(xx, 0);
    let yl = Math.floor(y);
    let xl = Math.floor(xx);
    let yh = yl + 1;
    let xh = xl + 1;
    if (yl >= H - 1) [yl, yh, y] = [H - 1, H - 1, H - 1];
    if (xl >= W - 1) [xl, xh, xx] = [W - 1, W - 1, W - 1];
    const ly = y - yl;
    const lx = xx - xl;
    return (
      (1 - ly) * (1 - lx) * at(b, c, yl, xl) +
      (1 - ly) * lx * at(b, c, yl, xh) +
      ly * (1 - lx) * at(b, c, yh, xl) +
      ly * lx * at(b, c, yh, xh)
    );
  };
  for (const [b, x1, y1, x2, y2] of boxes as [number, number, number, number, number][]) {
    const o = aligned ? 0.5 : 0;
    const sx = x1 * scale - o;
    const sy = y1 * scale - o;
    let w = x2 * scale - o - sx;
    let h = y2 * scale - o - sy;
    if (!aligned) [w, h] = [Math.max(w, 1), Math.max(h, 1)];
    const gy = ratio > 0 ? ratio : Math.ceil(h / out);
    const gx = ratio > 0 ? ratio : Math.ceil(w / out);
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < out; i++) {
        for (let j = 0; j < out; j++) {
          let s = 0;
          for (let iy = 0; iy < gy; iy++)
            for (let ix = 0; ix < gx; ix++)
              s += sample(b, c, sy + (i + (iy + 0.5) / gy) * (h / out), sx + (j + (ix + 0.5) / gx) * (w / out));
          res.push(s / Math.max(gx * gy, 1));
        }
      }
    }
  }
  return res;
}

// A small random problem: 3 images, 4 channels, 7x9 map; boxes inside, across and beyond the borders, tiny and large.
function problem() {
  const shape = [3, 4, 7, 9];
  let s = 12345;
  const rnd = () => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  const data = Float64Array.from({ length: 3 * 4 * 7 * 9 }, () => rnd() * 2 - 1);
  const boxes: number[][] = [];
  for (let k = 0; k < 12; k++) {
    const b = k % 3;
    const x1 = rnd() * 40 - 4;
    const y1 = rnd() * 30 - 4;
    boxes.push([b, x1, y1, x1 + 0.5 + rnd() * 24, y1 + 0.5 + rnd() * 20]);
  }
  boxes.push([1, -3, -3, 40, 32], [0, 10, 10, 10.5, 10.2], [2, 30, 26, 36, 31]);
  return { shape, data, boxes };
}
const CASES = [
  { out: 1, scale: 0.25, ratio: -1, aligned: false },
  { out: 1, scale: 0.25, ratio: -1, aligned: true },
  { out: 2, scale: 0.25, ratio: -1, aligned: false },
  { out: 3, scale: 0.25, ratio: 2, aligned: true },
  { out: 6, scale: 0.25, ratio: -1, aligned: true },
  { out: 3, scale: 1, ratio: -1, aligned: false },
];

test('roiAlign: matches an independent float64 loop implementation of torchvision semantics', () => {
  const { shape, data, boxes } = problem();
  const x = tensor(data, shape, { dtype: 'float64' });
  for (const c of CASES) {
    const got = roiAlign(x, boxes, {
      outputSize: c.out,
      spatialScale: c.scale,
      samplingRatio: c.ratio,
      aligned: c.aligned,
    });
    assert.deepEqual(got.shape, [boxes.length, 4, c.out, c.out]);
    close(
      got.toNumbers(),
      refRoiAlign(data, shape, boxes, c.out, c.scale, c.ratio, c.aligned),
      1e-12,
      JSON.stringify(c),
    );
  }
  // float32 input: same values within float32 rounding.
  const x32 = tensor(Float32Array.from(data), shape);
  const c = CASES[4] as (typeof CASES)[number];
  const got = roiAlign(x32, boxes, { outputSize: c.out, spatialScale: c.scale, aligned: true });
  assert.equal(got.dtype, 'float32');
  close(got.toNumbers(), refRoiAlign(data, shape, boxes, c.out, c.scale, -1, true), 1e-5, 'float32');
});

test('roiAlign: matches torchvision.ops.roi_align (via /usr/bin/python3 when torchvision is importable)', (t) => {
  const py = '/usr/bin/python3';
  const probe = existsSync(py) ? spawnSync(py, ['-c', 'import torch, torchvision'], { encoding: 'utf8' }) : null;
  if (probe?.status !== 0) {
    // scripts/setup.sh installs Debian's python3-torchvision: in CI a missing one is a failure, not a skip
    if (process.env.CI)
      assert.fail(`CI: torchvision is not importable by ${py}; scripts/setup.sh installs python3-torchvision`);
    t.skip(
      `torchvision is not importable by ${py} (${probe?.stderr.trim().split('\n').pop() ?? 'no such file'}); compared with the loop reference only`,
    );
    return;
  }
  const { shape, data, boxes } = problem();
  const script = `
import json, sys, torch
from torchvision.ops import roi_align
p = json.load(sys.stdin)
x = torch.tensor(p['data'], dtype=torch.float64).reshape(p['shape'])
b = torch.tensor(p['boxes'], dtype=torch.float64)
print(json.dumps([roi_align(x, b, c['out'], c['scale'], c['ratio'], c['aligned']).flatten().tolist() for c in p['cases']]))
`;
  const r = spawnSync(py, ['-c', script], {
    input: JSON.stringify({ shape, data: [...data], boxes, cases: CASES }),
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  const want = JSON.parse(r.stdout) as number[][];
  const x = tensor(data, shape, { dtype: 'float64' });
  CASES.forEach((c, i) => {
    const got = roiAlign(x, boxes, {
      outputSize: c.out,
      spatialScale: c.scale,
      samplingRatio: c.ratio,
      aligned: c.aligned,
    });
    close(got.toNumbers(), want[i] as number[], 1e-10, `torchvision ${JSON.stringify(c)}`);
  });
});
