// The `locus` command line: info (OpenBLAS), --help everywhere, the commands not built yet, and the main
// pipeline on a tiny model (pretrain → k-NN eval vs random init → report) with its JSON last lines.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { runLocus } from './fixtures/cli.js';
import { TINY_DINO } from './fixtures/tiny.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const locus = (args: string[]) => runLocus(tmp, args);

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;

const TINY = [
  ...TINY_DINO,
  'optim.batchSize=8',
  'data.dataset.length=32',
  'data.dataset.size=32',
  'data.workers=0',
  // tiny probes: a few items, few steps (each probe's own tests check its numbers)
  'eval.knn.train.length=200',
  'eval.knn.test.length=100',
  'eval.linear.train.length=100',
  'eval.linear.test.length=50',
  'eval.linear.epochs=3',
  'eval.seg.train.length=8',
  'eval.seg.test.length=4',
  'eval.seg.steps=5',
  'eval.nnseg.train.length=8',
  'eval.nnseg.test.length=4',
  'eval.parts.train.length=6',
  'eval.parts.test.length=4',
  'eval.parts.seg.steps=5',
  'eval.parts.linear.epochs=3',
  'eval.location.train.length=4',
  'eval.location.test.length=2',
  'eval.location.epochs=2',
].flatMap((s) => ['--set', s]);

test('info --json: one JSON object on the last line, with OpenBLAS', () => {
  const r = locus(['info', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const info = lastJson(r.stdout);
  assert.match(String(info.blas_config), /OpenBLAS/);
  assert.equal(info.openblas, true);
  assert.equal(typeof info.torch, 'string');
  assert.ok(Number(info.threads) >= 1);
  assert.equal(typeof info.cuda, 'boolean');
  assert.ok((info.methods as string[]).includes('dino'));
  const plain = locus(['info']);
  assert.match(plain.stdout, /BLAS\s+OpenBLAS/);
});

test('--help works for the program and every command, with examples', () => {
  const top = locus(['--help']);
  assert.equal(top.code, 0);
  for (const c of ['pretrain', 'eval', 'report', 'bench', 'export', 'info', 'main'])
    assert.match(top.stdout, new RegExp(`\\b${c}\\b`));
  for (const c of ['pretrain', 'eval', 'report', 'bench', 'export', 'info', 'main']) {
    const r = locus([c, '--help']);
    assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
    assert.match(r.stdout, /Examples:/, c);
  }
  assert.match(locus(['pretrain', '--help']).stdout, /--resume <dir>[\s\S]*--nproc <n>[\s\S]*dino\s+DINO/);
});

test('bench: an unknown benchmark is one clear line', () => {
  const r = locus(['bench', 'nope']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /unknown benchmark 'nope' \(allowed: engine, data, methods, ddp, compare, crash\)/);
});

test('usage errors are one line with a non-zero exit', () => {
  const r = locus(['eval', 'nope', '--checkpoint', tmp]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /unknown eval kind 'nope' \(allowed: knn/);
  const m = locus(['eval', 'knn']);
  assert.notEqual(m.code, 0);
  assert.match(m.stderr, /--checkpoint/);
  const s = locus(['pretrain', '--steps', 'x']);
  assert.notEqual(s.code, 0);
  assert.match(s.stderr, /--steps.*must be an integer/);
});

test('main: pretrain, every probe on the trained and on a random backbone, report; eval and report commands', () => {
  const out = join(tmp, 'run');
  const r = locus(['main', '--steps', '3', ...TINY, '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /run directory: /);
  assert.match(r.stdout, /final checkpoint: .*step-000003\.safetensors/);
  const j = lastJson(r.stdout);
  assert.equal(j.run_dir, out);
  const evals = j.evals as Record<string, Record<string, number>>;
  for (const k of ['knn', 'linear', 'seg', 'nnseg', 'parts', 'location']) {
    assert.ok(evals[k] && evals[`${k}_random_init`], k);
    const files = readdirSync(join(out, 'evals'));
    for (const prefix of [`${k}@`, `${k}_random_init@`]) // <probe>[_random_init]@<dataset>.json
      assert.ok(
        files.some((f) => f.startsWith(prefix) && f.endsWith('.json')),
        `${prefix}*.json in ${files.join(', ')}`,
      );
  }
  // the headline per probe, trained vs random init, in percent (one seed: no spread)
  assert.equal(j.method, 'dino');
  assert.equal(j.steps, 3);
  const probes = j.probes as Record<string, { trained: number; random: number; spread: null; unit: string }>;
  assert.deepEqual(Object.keys(probes).sort(), [
    'knn.top1',
    'linear.top1',
    'location.acc',
    'nnseg.miou',
    'parts.part_miou',
    'seg.miou',
  ]);
  assert.equal(probes['knn.top1']?.trained, Number((100 * (evals.knn?.top1 as number)).toFixed(2)));
  assert.equal(probes['seg.miou']?.random, Number((100 * (evals.seg_random_init?.miou as number)).toFixed(2)));
  assert.equal(probes['seg.miou']?.spread, null);
  assert.equal(probes['seg.miou']?.unit, '%');
  const acc = (v: unknown) => typeof v === 'number' && v >= 0 && v <= 1;
  assert.ok(acc(evals.knn?.top1) && acc(evals.seg?.miou) && acc(evals.parts?.part_miou) && acc(evals.location?.acc));
  for (const f of ['config.json', 'metrics.jsonl', 'report.html']) assert.ok(existsSync(join(out, f)), f);
  const knn = JSON.parse(readFileSync(join(out, 'evals/knn@fashion-mnist.json'), 'utf8'));
  assert.equal(knn.k, 20);
  assert.equal(knn.hyper.temperature, 0.07);
  assert.equal(knn.data.n_train, 200);
  assert.match(knn.checkpoint.hash, /^[0-9a-f]{64}$/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<svg/); // training curves
  assert.match(html, /data:image\/png;base64/); // attention / PCA pictures

  const e = locus([
    'eval',
    'knn',
    '--checkpoint',
    out,
    '--json',
    '--no-save',
    '--set',
    'train.length=200',
    '--set',
    'test.length=100',
  ]);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(lastJson(e.stdout).top1, knn.top1, 'same checkpoint, same k-NN');
  const bad = locus(['eval', 'knn', '--checkpoint', out, '--set', 'kk=3']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /unknown option 'kk' \(allowed: .*ks/);
  const rr = locus(['report', out, '--out', join(tmp, 'r.html'), '--no-pictures', '--json']);
  assert.equal(rr.code, 0, rr.stderr);
  assert.equal(lastJson(rr.stdout).report, join(tmp, 'r.html'));
});
