// The probes end to end with a tiny random ViT on a few images: result JSON fields, files, cache, errors.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { liveTensors } from '../src/engine/index.js';
import { saveTensors } from '../src/engine/io.js';
import { EVAL_KINDS, loadRunCheckpoint, randomBackbone, runEval } from '../src/eval/index.js';
import type { VitConfig } from '../src/nn/index.js';
import { collectRun } from '../src/report/collect.js';
import { CHECKPOINT_FORMAT, saveCheckpoint } from '../src/train/checkpoint.js';
import { type Config, configHash, resolveConfig } from '../src/train/config.js';
import { buildMethod } from '../src/train/loop.js';
import { createRun } from '../src/train/run.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-eval-test-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const tiny: Partial<VitConfig> = { imgSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2 };
const common = { progress: false, batchSize: 16, seed: 3 };
const scenes = (split: 'train' | 'eval', length: number) => ({ kind: 'scenes' as const, split, length });

function assertHeader(r: Record<string, unknown>, kind: string) {
  assert.equal(r.kind, kind);
  assert.equal(r.format, 'locus-eval/1');
  assert.equal(r.seed, 3);
  const ck = r.checkpoint as { hash: string; method: string };
  assert.match(ck.hash, /^random-3-[0-9a-f]{12}$/);
  assert.equal((r.model as VitConfig).dim, 32);
  const input = r.input as { size: number; interp: string; mean: number[]; note: string };
  assert.equal(input.size, 16); // the model's native size by default
  assert.match(input.note, /native input 16x16/);
  assert.ok((r.data as { train: { kind: string } }).train.kind);
  assert.ok(typeof (r.timing as { total_s: number }).total_s === 'number');
  assert.ok(r.hyper && typeof r.hyper === 'object');
}

describe('eval end to end (tiny random ViT)', () => {
  test('knn: fields, hyper-parameters, written JSON, feature cache', async () => {
    const outDir = join(tmp, 'run', 'eval');
    const options = {
      ...common,
      outDir,
      cacheDir: join(tmp, 'run', 'cache'),
      train: { kind: 'fashion-mnist', split: 'train', length: 40 },
      test: { kind: 'fashion-mnist', split: 'test', length: 20 },
    };
    const live = liveTensors();
    const r = await runEval('knn', { checkpoint: 'random', randomConfig: tiny, options });
    assertHeader(r, 'knn');
    assert.ok((r.top1 as number) >= 0 && (r.top1 as number) <= 1);
    assert.deepEqual(Object.keys(r.per_k as object), ['10', '20', '100', '200']);
    assert.equal((r.per_k as Record<string, { k_used: number }>)['200']?.k_used, 40); // clamped to the train size
    const hyper = r.hyper as { temperature: number; kReport: number; ks: number[] };
    assert.equal(hyper.temperature, 0.07);
    assert.equal(hyper.kReport, 20);
    assert.deepEqual(JSON.parse(readFileSync(join(outDir, 'knn@fashion-mnist.json'), 'utf8')).top1, r.top1);
    // features cached (train and test); a second run reads them and agrees
    const cached = readdirSync(join(tmp, 'run', 'cache')).filter((f) => f.endsWith('.safetensors'));
    assert.equal(cached.length, 2);
    const r2 = await runEval('knn', { checkpoint: 'random', randomConfig: tiny, options });
    assert.equal(r2.top1, r.top1);
    assert.deepEqual(r2.per_k, r.per_k);
    // the probes free what they allocate, the backbone they loaded included
    assert.equal(liveTensors() - live, 0, `leak: ${liveTensors() - live} tensors`);
  });

  test('seg on scenes: mIoU, per-class IoU, class names, saved head', async () => {
    const outDir = join(tmp, 'run2', 'eval');
    const r = await runEval('seg', {
      checkpoint: 'random',
      randomConfig: tiny,
      // a partial dataset spec merges with the default (scenes): only the length changes
      options: { ...common, outDir, cacheDir: null, train: { length: 12 }, test: { length: 6 }, steps: 20 },
    });
    assertHeader(r, 'seg');
    assert.ok((r.miou as number) > 0 && (r.miou as number) <= 1);
    assert.equal((r.per_class_iou as unknown[]).length, 11);
    assert.equal((r.class_names as string[])[0], 'background');
    assert.deepEqual(r.label_size, [64, 64]);
    assert.deepEqual(r.grid, [4, 4]);
    assert.match(r.miou_note as string, /excluded/);
    assert.equal((r.hyper as { steps: number }).steps, 20);
    assert.ok(existsSync(join(outDir, 'seg_head.safetensors')));
    assert.ok(!existsSync(join(tmp, 'run2', 'cache')));
  });

  test('location: accuracy against the grid, input size option', async () => {
    const r = await runEval('location', {
      checkpoint: 'random',
      randomConfig: tiny,
      options: { ...common, size: 32, train: scenes('train', 6), test: scenes('eval', 3), epochs: 3 },
    });
    assert.deepEqual(r.grid, [8, 8]); // 32 px input, patch 4: position embedding interpolated
    assert.equal(r.chance, 1 / 64);
    assert.ok((r.acc as number) >= 0 && (r.acc as number) <= 1);
    assert.match((r.input as { note: string }).note, /interpolated/);
  });

  test('parts: part level, object level and their gap', async () => {
    const r = await runEval('parts', {
      checkpoint: 'random',
      randomConfig: tiny,
      options: {
        ...common,
        train: { kind: 'parts', split: 'train', length: 6 },
        test: { kind: 'parts', split: 'eval', length: 4 },
        linear: { lrs: [0.1], wds: [0], valFraction: 0.2, epochs: 3, batchSize: 64, momentum: 0.9, seed: 0 },
        seg: { steps: 5, batchSize: 4, lr: 0.003, wd: 0, seed: 0 },
      },
    });
    assertHeader(r, 'parts');
    const part = r.part as {
      classes: number;
      retrieval: Record<string, { ap: number; map: number }>;
      seg: { per_class_iou: unknown[] };
    };
    assert.equal(part.classes, 4);
    assert.ok(part.retrieval.mean_patch && part.retrieval.cls);
    assert.ok(part.retrieval.cls.ap > 0 && part.retrieval.cls.ap <= 1);
    assert.equal(part.seg.per_class_iou.length, 5);
    assert.equal((r.object as { classes: number }).classes, 6);
    const gap = r.gap as Record<string, number>;
    assert.ok(Math.abs(gap.linear_top1 - ((r.object_acc as number) - (r.part_acc as number))) < 1e-12);
    for (const k of ['part_miou', 'object_miou', 'part_map', 'object_map']) assert.equal(typeof r[k], 'number');
  });

  test('every kind is dispatched; unknown kinds and options are errors', async () => {
    assert.deepEqual([...EVAL_KINDS], ['knn', 'linear', 'seg', 'nnseg', 'parts', 'location']);
    await assert.rejects(runEval('nope', { checkpoint: 'random' }), /unknown eval kind 'nope' \(allowed: knn, linear/);
    await assert.rejects(
      runEval('knn', { checkpoint: 'random', randomConfig: tiny, options: { tempreature: 0.1 } }),
      /unknown option 'tempreature'/,
    );
  });

  test('a mask folder with labels beyond the declared classes: clear error', async () => {
    const root = join(tmp, 'segbad');
    mkdirSync(join(root, 'im'), { recursive: true });
    mkdirSync(join(root, 'mk'), { recursive: true });
    for (const name of ['a', 'b', 'c']) {
      await sharp(Buffer.alloc(16 * 16 * 3, 80), { raw: { width: 16, height: 16, channels: 3 } })
        .png()
        .toFile(join(root, 'im', `${name}.png`));
      const m = Buffer.alloc(16 * 16, 1);
      if (name === 'b') m[40] = 9; // classes = 4: 9 is out of range and not the ignore index
      await sharp(m, { raw: { width: 16, height: 16, channels: 1 } })
        .toColourspace('b-w')
        .png()
        .toFile(join(root, 'mk', `${name}.png`));
    }
    // declared with room for label 9: the probe runs (a held-out fraction of the one folder is the test set)
    const okSpec = { kind: 'segfolder', images: join(root, 'im'), masks: join(root, 'mk'), classes: 10 };
    const ok = await runEval('seg', {
      checkpoint: 'random',
      randomConfig: tiny,
      options: { ...common, train: okSpec, test: null, testFraction: 0.34, steps: 2 },
    });
    assert.equal((ok.data as { n_train: number; n_test: number }).n_test, 1);
    assert.equal((ok.per_class_iou as unknown[]).length, 10);
    const spec = { ...okSpec, classes: 4 };
    await assert.rejects(
      runEval('seg', {
        checkpoint: 'random',
        randomConfig: tiny,
        options: { ...common, train: spec, test: null, steps: 2 },
      }),
      (e: Error) => /mk\/b\.png/.test(e.message) && /label 9/.test(e.message) && /classes = 4/.test(e.message),
    );
  });

  test('a checkpoint whose tensors do not match its architecture: one-line error', async () => {
    const bb = randomBackbone(tiny);
    const path = join(tmp, 'wrong.safetensors');
    // metadata claims depth 3, the tensors have 2 blocks
    saveTensors(path, bb.vit.stateDict(), {
      img_size: '16',
      patch_size: '4',
      in_chans: '3',
      embed_dim: '32',
      depth: '3',
      num_heads: '2',
      mlp_ratio: '4',
      qkv_bias: 'true',
      method: 'dino',
    });
    await assert.rejects(runEval('knn', { checkpoint: path, options: common }), (e: Error) => {
      assert.match(e.message, /wrong\.safetensors does not match the architecture/);
      assert.match(e.message, /missing blocks\.2\./);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  });

  /** A run directory with one checkpoint, as the trainer writes it (config, metrics, checkpoints/). */
  function fakeRun(dir: string, cfg: Config, weightsOf: Config = cfg): void {
    const p = createRun(dir, cfg);
    writeFileSync(
      p.metrics,
      `${[0, 1].map((s) => JSON.stringify({ step: s, loss: 5 - s, step_s: 0.5 })).join('\n')}\n`,
    );
    const m = buildMethod(weightsOf);
    saveCheckpoint(
      p.checkpoints,
      { student: m.student.stateDict(), teacher: m.teacher?.stateDict() ?? null, optim: new Map(), rng: new Map() },
      {
        format: CHECKPOINT_FORMAT,
        method: cfg.method,
        step: 2,
        epoch: 0,
        stepInEpoch: 2,
        stepsPerEpoch: 10,
        optimizerStep: 2,
        configHash: configHash(cfg),
        seed: cfg.seed,
        loss: 4,
        savedAt: new Date(0).toISOString(),
      },
      cfg,
    );
    m.student.dispose();
    m.teacher?.dispose();
  }
  const small = { imgSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2 };
  const dinoSmall = { outDim: 64, hiddenDim: 64, bottleneckDim: 16 };

  test('run checkpoint: eval backbone, projector, results under <run>/evals, report pictures', async () => {
    const dir = join(tmp, 'dino-run');
    fakeRun(dir, resolveConfig({ method: 'dino', seed: 1, model: small, dino: dinoSmall }));
    const bb = loadRunCheckpoint(dir);
    assert.equal(bb.method, 'dino');
    assert.equal(bb.step, 2);
    assert.match(bb.hash, /^[0-9a-f]{64}$/);
    assert.ok(bb.projector, 'DINO exposes its head as the projector');
    bb.dispose?.();
    const r = await runEval('seg', {
      checkpoint: dir,
      options: { ...common, train: scenes('train', 8), test: scenes('eval', 4), steps: 10 },
    });
    assert.equal((r.checkpoint as { hash: string }).hash, bb.hash);
    assert.ok(existsSync(join(dir, 'evals', 'seg@scenes.json')));
    assert.ok(existsSync(join(dir, 'evals', 'seg_head.safetensors')));
    assert.ok(readdirSync(join(dir, 'cache')).length > 0);
    const p = await runEval('parts', {
      checkpoint: dir,
      options: {
        ...common,
        train: { kind: 'parts', split: 'train', length: 4 },
        test: { kind: 'parts', split: 'eval', length: 3 },
        linear: { lrs: [0.1], wds: [0], valFraction: 0.2, epochs: 2, batchSize: 64, momentum: 0.9, seed: 0 },
        seg: { steps: 2, batchSize: 4, lr: 0.003, wd: 0, seed: 0 },
      },
    });
    assert.ok((p.part as { retrieval: Record<string, unknown> }).retrieval.projector, 'projector features retrieved');
    const run = await collectRun(dir, { pictures: 2 });
    assert.equal(run.method, 'dino');
    assert.equal(run.metrics.length, 2);
    assert.deepEqual(Object.keys(run.evals).sort(), ['parts@parts', 'seg@scenes']); // <probe>@<dataset>
    const pics = run.pictures?.images ?? [];
    assert.equal(pics.length, 2);
    assert.equal(pics[0]?.attention?.length, 2); // one map per head
    assert.equal(pics[0]?.attention?.[0]?.width, 4);
    assert.equal(pics[0]?.pca?.data.length, 16 * 3);
    assert.equal(pics[0]?.segPred?.data.length, 64 * 64);
    assert.equal(pics[0]?.segGt?.classes, 11);
  });

  test('a run checkpoint whose weights do not fit its config: one-line error naming both', async () => {
    const dir = join(tmp, 'bad-run');
    const cfg = resolveConfig({ method: 'dino', model: small, dino: dinoSmall });
    fakeRun(dir, cfg, resolveConfig({ method: 'dino', model: { ...small, depth: 3 }, dino: dinoSmall }));
    await assert.rejects(runEval('knn', { checkpoint: dir, options: common }), (e: Error) => {
      assert.match(
        e.message,
        /step-000002\.safetensors does not match its config \(method dino, model dim 32, depth 2/,
      );
      assert.match(e.message, /unexpected .*blocks\.2\./);
      assert.ok(!e.message.includes('\n'), 'one line');
      return true;
    });
  });
});
