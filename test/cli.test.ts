// The `locus` command line: info (OpenBLAS), --help everywhere, the commands not built yet, and the main
// pipeline on a tiny model (pretrain → k-NN eval vs random init → report) with its JSON last lines.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = join(ROOT, 'bin/locus.js');
const tmp = mkdtempSync(join(tmpdir(), 'locus-cli-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

function locus(args: string[]) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    cwd: tmp,
    encoding: 'utf8',
    env: { ...process.env, LOCUS_THREADS: '1', MALLOC_ARENA_MAX: '1' },
    timeout: 180_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1) as string) as Record<string, unknown>;

const TINY = [
  'model.depth=1',
  'model.dim=32',
  'model.heads=2',
  'dino.outDim=64',
  'dino.hiddenDim=64',
  'dino.bottleneckDim=32',
  'optim.batchSize=8',
  'data.dataset.length=32',
  'data.dataset.size=32',
  'data.workers=0',
  'eval.knn.trainItems=200',
  'eval.knn.testItems=100',
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
  for (const c of ['pretrain', 'eval', 'report', 'export', 'info', 'main']) {
    const r = locus([c, '--help']);
    assert.equal(r.code, 0, `${c} --help: ${r.stderr}`);
    assert.match(r.stdout, /Examples:/, c);
  }
  assert.match(locus(['pretrain', '--help']).stdout, /--resume <dir>[\s\S]*--nproc <n>[\s\S]*dino\s+DINO/);
});

test('commands not built yet say so plainly (exit 2)', () => {
  const r = locus(['bench']);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /not built yet/);
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

test('main: pretrain, k-NN of the trained and of a random backbone, report; eval and report commands', () => {
  const out = join(tmp, 'run');
  const r = locus(['main', '--steps', '3', ...TINY, '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /run directory: /);
  assert.match(r.stdout, /final checkpoint: .*step-000003\.safetensors/);
  const j = lastJson(r.stdout);
  assert.equal(j.run_dir, out);
  assert.ok(Number(j.knn_top1) > 0 && Number(j.knn_random_init_top1) > 0);
  for (const f of ['config.json', 'metrics.jsonl', 'evals/knn.json', 'evals/knn_random_init.json', 'report.html'])
    assert.ok(existsSync(join(out, f)), f);
  const knn = JSON.parse(readFileSync(join(out, 'evals/knn.json'), 'utf8'));
  assert.equal(knn.k, 20);
  assert.equal(knn.temperature, 0.07);
  assert.match(knn.checkpoint_sha256, /^[0-9a-f]{64}$/);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.match(html, /<svg/); // training curves
  assert.match(html, /data:image\/png;base64/); // attention / PCA pictures

  const e = locus(['eval', 'knn', '--checkpoint', out, '--json', '--no-save']);
  assert.equal(e.code, 0, e.stderr);
  assert.equal(lastJson(e.stdout).top1, knn.top1, 'same checkpoint, same k-NN');
  const rr = locus(['report', out, '--out', join(tmp, 'r.html'), '--no-pictures', '--json']);
  assert.equal(rr.code, 0, rr.stderr);
  assert.equal(lastJson(rr.stdout).report, join(tmp, 'r.html'));
});
