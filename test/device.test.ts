// Device selection without a GPU: train.device (cpu default, cuda refused with a clear message on a CPU-only
// build, auto → cpu), the c10d backend choice (NCCL refused on a build without it, Gloo by default), what
// `locus info` reports about the build, and a 2-step training run with train.device=auto.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { info } from '../src/cli/info.js';
import { cudaAvailable, tensor } from '../src/engine/index.js';
import { buildFlags, native } from '../src/engine/native.js';
import { ConfigError, configHash, resolveConfig, resolveDevice } from '../src/train/config.js';
import { Distributed, defaultBackend, distFromEnv } from '../src/train/distributed.js';
import { freePort } from '../src/train/launch.js';
import { trainDevice } from '../src/train/loop.js';
import { TINY_DINO } from './fixtures/tiny.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/locus.js');
const tmp = mkdtempSync(join(tmpdir(), 'locus-device-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const flags = buildFlags();
const NO_CUDA_MESSAGE = "train.device is 'cuda' but this libtorch build has no CUDA (locus info shows the build)";

describe('train.device', () => {
  test("defaults to 'cpu'", () => {
    const c = resolveConfig({});
    assert.equal(c.train.device, 'cpu');
    assert.equal(resolveDevice(c), 'cpu');
    assert.equal(trainDevice(c), 'cpu');
  });

  test('names the allowed values', () => {
    assert.throws(
      () => resolveConfig({ train: { device: 'gpu' } }),
      (e: Error) => e instanceof ConfigError && /train\.device must be one of 'cpu', 'cuda', 'auto'/.test(e.message),
    );
  });

  test("'cuda' is refused with a clear message on a CPU-only build", { skip: flags.cuda && 'a CUDA build' }, () => {
    // The config itself resolves (a run trained on a GPU still loads for eval elsewhere); training refuses it.
    const c = resolveConfig({ train: { device: 'cuda' } });
    assert.throws(
      () => resolveDevice(c),
      (e: Error) => e instanceof ConfigError && e.message === `config error: ${NO_CUDA_MESSAGE}`,
    );
    assert.throws(() => trainDevice(c), { message: `config error: ${NO_CUDA_MESSAGE}` });
  });

  test("'auto' is cuda when available, else cpu", () => {
    const c = resolveConfig({ train: { device: 'auto' } });
    assert.equal(resolveDevice(c), cudaAvailable() ? 'cuda' : 'cpu');
    if (!flags.cuda) assert.equal(resolveDevice(c), 'cpu');
  });

  test('the device does not change the training math (a resume may switch it)', () => {
    assert.equal(configHash(resolveConfig({})), configHash(resolveConfig({ train: { device: 'auto' } })));
  });
});

describe('c10d backend', () => {
  test('the build reports its flags, and locus info shows them', () => {
    assert.equal(typeof flags.cuda, 'boolean');
    assert.equal(typeof flags.nccl, 'boolean');
    assert.equal(typeof flags.gloo, 'boolean');
    if (!flags.cuda) assert.equal(flags.nccl, false, 'NCCL needs a CUDA build');
    const i = info();
    assert.equal(i.cuda_build, flags.cuda);
    assert.equal(i.nccl, flags.nccl);
    assert.equal(i.gloo, flags.gloo);
    assert.equal(typeof i.cuda, 'boolean');
  });

  test("pgInit with backend 'nccl' throws a clear error on a build without NCCL", {
    skip: flags.nccl && 'NCCL build',
  }, async () => {
    const port = await freePort();
    assert.throws(() => native.pgInit(0, 1, '127.0.0.1', port, 2000, 'nccl'), {
      message: /distributed backend 'nccl' is not in this build: the addon was built without NCCL/,
    });
    assert.throws(
      () =>
        new Distributed({
          rank: 0,
          worldSize: 1,
          masterAddr: '127.0.0.1',
          masterPort: port,
          timeoutMs: 2000,
          backend: 'nccl',
        }),
      { message: /backend 'nccl' is not in this build/ },
    );
  });

  test('pgInit names the backends it knows', async () => {
    const port = await freePort();
    assert.throws(() => native.pgInit(0, 1, '127.0.0.1', port, 2000, 'mpi'), {
      message: /unknown backend 'mpi' \(gloo or nccl\)/,
    });
  });

  test("the default is 'gloo' on cpu, and on cuda without NCCL", () => {
    assert.equal(defaultBackend(), 'gloo');
    assert.equal(defaultBackend('cpu'), 'gloo');
    assert.equal(defaultBackend('cuda:0'), flags.nccl ? 'nccl' : 'gloo');
  });

  test('a one-process Gloo group by default', { skip: !flags.gloo && 'a build without Gloo' }, async () => {
    const d = new Distributed({
      rank: 0,
      worldSize: 1,
      masterAddr: '127.0.0.1',
      masterPort: await freePort(),
      timeoutMs: 10_000,
    });
    try {
      assert.equal(d.backend, 'gloo');
      assert.equal(d.localRank, 0);
      const t = tensor([1, 2, 3]);
      d.allReduceSum(t);
      assert.deepEqual(Array.from(t.toArray() as Float32Array), [1, 2, 3]);
      t.dispose();
    } finally {
      d.close();
    }
  });

  test('LOCAL_RANK is read from the environment (default: RANK)', () => {
    const base = { WORLD_SIZE: '4', RANK: '3', MASTER_PORT: '29500' };
    assert.equal(distFromEnv(base)?.localRank, 3);
    assert.equal(distFromEnv({ ...base, LOCAL_RANK: '1' })?.localRank, 1);
    assert.throws(() => distFromEnv({ ...base, LOCAL_RANK: 'x' }), { message: /LOCAL_RANK must be/ });
  });
});

test('a 2-step training run with train.device=auto', () => {
  const out = join(tmp, 'auto');
  const sets = [
    ...TINY_DINO,
    'optim.batchSize=8',
    'data.dataset.length=16',
    'data.dataset.size=32',
    'data.workers=1',
    'train.progress=none',
    'train.device=auto',
  ].flatMap((s) => ['--set', s]);
  const r = spawnSync(process.execPath, [BIN, 'pretrain', '--steps', '2', ...sets, '--out', out, '--json'], {
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' },
    timeout: 180_000,
  });
  assert.equal(r.status, 0, r.stderr);
  const last = JSON.parse(r.stdout.trim().split('\n').pop() as string) as { step: number; loss: number };
  assert.equal(last.step, 2);
  assert.ok(Number.isFinite(last.loss));
  const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as { train: { device: string } };
  assert.equal(config.train.device, 'auto');
  const rows = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n');
  assert.equal(rows.length, 2);
});
