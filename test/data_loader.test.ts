// Loader: byte-identical batches for any worker count, the sharding rule, error propagation.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import sharp from 'sharp';
import type { DatasetSpec } from '../src/data/datasets.js';
import { type Batch, epochOrder, Loader, type LoaderOptions, rankBatches } from '../src/data/loader.js';
import { gtsaViews, locaViews, multiCrop, plainViews, scrlViews } from '../src/data/views.js';

const scenes: DatasetSpec = { kind: 'scenes', split: 'train', length: 10, size: 64 };
const tmp = mkdtempSync(join(tmpdir(), 'locus-loader-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

async function collect(o: LoaderOptions, epoch = 0): Promise<Batch[]> {
  const loader = new Loader(o);
  try {
    const out: Batch[] = [];
    for await (const b of loader.epoch(epoch)) out.push(b);
    return out;
  } finally {
    await loader.close();
  }
}

function bytes(b: Batch): Buffer {
  const parts: Buffer[] = [
    Buffer.from(
      JSON.stringify({
        i: b.indices,
        v: b.views.map((v) => v.shape),
        e: Object.entries(b.extras).map(([k, e]) => [k, e.shape]),
      }),
    ),
  ];
  for (const v of b.views) parts.push(Buffer.from(v.data.buffer, v.data.byteOffset, v.data.byteLength));
  for (const k of Object.keys(b.extras).sort()) {
    const d = (b.extras[k] as Batch['extras'][string]).data;
    parts.push(Buffer.from(d.buffer, d.byteOffset, d.byteLength));
  }
  return Buffer.concat(parts);
}

test('same seed → byte-identical batches with 0, 1 and 2 workers', async () => {
  const o: LoaderOptions = { dataset: scenes, views: multiCrop(), batchSize: 4, seed: 5 };
  const w0 = await collect({ ...o, workers: 0 }, 1);
  const w1 = await collect({ ...o, workers: 1 }, 1);
  const w2 = await collect({ ...o, workers: 2, prefetch: 3 }, 1);
  assert.equal(w0.length, 2); // 10 samples, batch 4, dropLast
  for (const other of [w1, w2]) {
    assert.equal(other.length, w0.length);
    other.forEach((b, k) => {
      assert.ok(bytes(b).equals(bytes(w0[k] as Batch)), `batch ${k} differs`);
    });
  }
  const b = w0[0] as Batch;
  assert.deepEqual(
    b.views.map((v) => v.shape),
    [[4, 3, 32, 32], [4, 3, 32, 32], ...Array(6).fill([4, 3, 16, 16])],
  );
  assert.deepEqual(b.extras.view_box?.shape, [4, 8, 4]);
  // another epoch or seed changes the batches
  const e2 = await collect({ ...o, workers: 0 }, 2);
  assert.ok(!bytes(e2[0] as Batch).equals(bytes(b)));
  const s2 = await collect({ ...o, workers: 0, seed: 6 }, 1);
  assert.ok(!bytes(s2[0] as Batch).equals(bytes(b)));
});

test('every recipe is deterministic across workers and has its extras', async () => {
  const cases = [
    { views: locaViews(), extras: { loca_labels_q0: [2, 64], loca_labels_focal: [2, 9, 16] } },
    { views: scrlViews(), extras: { scrl_boxes1: [20, 5], scrl_boxes2: [20, 5] } },
    { views: gtsaViews(), extras: { gtsa_gc: [2, 2, 10, 4], gtsa_all: [2, 10, 2, 4], view_rotation: [2, 10] } },
    { views: plainViews(), extras: { mask: [2, 64, 64], label: [2] } },
  ];
  for (const c of cases) {
    const o: LoaderOptions = { dataset: { ...scenes, length: 4 }, views: c.views, batchSize: 2, seed: 1 };
    const a = await collect({ ...o, workers: 0 });
    const b = await collect({ ...o, workers: 1 });
    a.forEach((x, k) => {
      assert.ok(bytes(x).equals(bytes(b[k] as Batch)), `${c.views.kind}: batch ${k} differs`);
    });
    for (const [k, shape] of Object.entries(c.extras))
      assert.deepEqual(a[0]?.extras[k]?.shape, shape, `${c.views.kind} ${k}`);
  }
});

test('sharding: W ranks of batch B = 1 rank of batch W·B, interleaved sample-major', async () => {
  const order = epochOrder(23, 3, 0);
  assert.deepEqual(
    [...order].sort((x, y) => x - y),
    Array.from({ length: 23 }, (_, i) => i),
  );
  // rule on the order positions (identity order makes positions visible)
  const id = Array.from({ length: 10 }, (_, i) => i);
  assert.deepEqual(rankBatches(id, 2, 1, 2, true), [
    [1, 3],
    [5, 7],
  ]);
  assert.deepEqual(rankBatches(id, 2, 0, 3, false), [
    [0, 3],
    [6, 9],
  ]); // padded to 12: 0..9, 0, 1
  assert.deepEqual(rankBatches(id, 2, 2, 3, false), [
    [2, 5],
    [8, 1],
  ]);
  for (const W of [2, 3]) {
    const single = rankBatches(order, 2 * W, 0, 1, true);
    const ranks = Array.from({ length: W }, (_, r) => rankBatches(order, 2, r, W, true));
    single.forEach((batch, k) => {
      const inter = [0, 1].flatMap((i) => ranks.map((rb) => rb[k]?.[i]));
      assert.deepEqual(inter, batch);
    });
  }
  // and through the loader, pixels included
  const o: LoaderOptions = { dataset: scenes, views: multiCrop({ localCount: 1 }), seed: 9, workers: 0, batchSize: 2 };
  const one = await collect({ ...o, batchSize: 4 });
  const r0 = await collect({ ...o, rank: 0, worldSize: 2 });
  const r1 = await collect({ ...o, rank: 1, worldSize: 2 });
  one.forEach((b, k) => {
    const [a, c] = [r0[k] as Batch, r1[k] as Batch];
    assert.deepEqual(b.indices, [a.indices[0], c.indices[0], a.indices[1], c.indices[1]]);
    const per = 3 * 32 * 32;
    const v = b.views[0]?.data as Float32Array;
    assert.deepEqual(v.subarray(per, 2 * per), c.views[0]?.data.subarray(0, per));
    assert.deepEqual(v.subarray(2 * per, 3 * per), a.views[0]?.data.subarray(per, 2 * per));
  });
});

test('worker errors reach the consumer, with the bad file named', async () => {
  // a JPEG whose header is fine but whose data is cut: passes the open-time header check, fails to decode
  const good = await sharp({ create: { width: 40, height: 40, channels: 3, background: { r: 200, g: 10, b: 10 } } })
    .png()
    .toBuffer();
  const noise = Buffer.from(Array.from({ length: 40 * 40 * 3 }, (_, i) => (i * 7919) % 256));
  const jpeg = await sharp(noise, { raw: { width: 40, height: 40, channels: 3 } })
    .jpeg()
    .toBuffer();
  writeFileSync(join(tmp, 'a_good.png'), good);
  writeFileSync(join(tmp, 'b_bad.jpg'), jpeg.subarray(0, Math.floor(jpeg.length / 2)));
  const o: LoaderOptions = {
    dataset: { kind: 'folder', root: tmp },
    views: multiCrop(),
    batchSize: 2,
    seed: 0,
    shuffle: false,
    workers: 1,
  };
  await assert.rejects(collect(o), /b_bad\.jpg/);
  await assert.rejects(collect({ ...o, workers: 0 }), /b_bad\.jpg/);
  // an impossible recipe fails inside the worker with an Error naming its config fields
  const bad = scrlViews({ boxes: { minSize: 1 }, maxPairTries: 3 });
  await assert.rejects(
    collect({ dataset: scenes, views: bad, batchSize: 2, seed: 0, workers: 1 }),
    /maxPairTries=3.*boxes\.minSize/,
  );
  assert.throws(() => locaViews({ focalSize: 32 }), /focalSize \(32\) must be smaller than refSize \(32\)/);
});

test('breaking out early and closing leaves no work behind', async () => {
  const loader = new Loader({ dataset: scenes, views: multiCrop(), batchSize: 2, seed: 0, workers: 2 });
  for await (const b of loader.epoch(0)) {
    assert.equal(b.indices.length, 2);
    break;
  }
  const again: number[][] = [];
  for await (const b of loader.epoch(0)) again.push(b.indices);
  assert.equal(again.length, 5);
  await loader.close();
  await assert.rejects(async () => {
    for await (const _ of loader.epoch(0)) break;
  }, /closed/);
});
