// Provenance (Locus version, git commit, libtorch, device) in config.json, checkpoint metadata and eval
// records; eval records keyed by (probe, dataset) so a second dataset never replaces the first.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { loadMetadata } from '../src/engine/io.js';
import { runEval } from '../src/eval/index.js';
import { CHECKPOINT_FORMAT, disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../src/train/checkpoint.js';
import { configHash, resolveConfig } from '../src/train/config.js';
import { datasetKey, evalFileName, latestEval, parseEvalName } from '../src/train/evalfiles.js';
import { buildMethod } from '../src/train/loop.js';
import { packageRoot, provenance, readGitCommit } from '../src/train/provenance.js';
import { createRun, readEvals, readRunConfig, readRunProvenance, writeEval, writeRunConfig } from '../src/train/run.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-prov-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

const root = packageRoot() as string;
const A = 'a'.repeat(40);
const B = 'b'.repeat(40);
const C = '0123456789abcdef0123456789abcdef01234567';

function tree(dir: string, files: Record<string, string>): string {
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(join(dir, p, '..'), { recursive: true });
    writeFileSync(join(dir, p), text);
  }
  return dir;
}

describe('git commit without spawning git', () => {
  test('loose ref, packed ref, worktree (.git file + commondir), detached, none', () => {
    const loose = tree(join(tmp, 'g1'), { '.git/HEAD': 'ref: refs/heads/main\n', '.git/refs/heads/main': `${A}\n` });
    assert.equal(readGitCommit(loose), A);
    const packed = tree(join(tmp, 'g2'), {
      '.git/HEAD': 'ref: refs/heads/dev\n',
      '.git/packed-refs': `# pack-refs with: peeled fully-peeled sorted\n${A} refs/heads/main\n${B} refs/heads/dev\n`,
    });
    assert.equal(readGitCommit(packed), B);
    // a worktree: .git is a file naming its git dir, whose commondir holds the refs
    tree(join(tmp, 'g3-main'), { '.git/refs/heads/feature': `${C}\n` });
    tree(join(tmp, 'g3-main'), {
      '.git/worktrees/wt/HEAD': 'ref: refs/heads/feature\n',
      '.git/worktrees/wt/commondir': '../..\n',
    });
    const wt = tree(join(tmp, 'g3-wt'), { '.git': `gitdir: ${join(tmp, 'g3-main', '.git', 'worktrees', 'wt')}\n` });
    assert.equal(readGitCommit(wt), C);
    const detached = tree(join(tmp, 'g4'), { '.git/HEAD': `${C}\n` });
    assert.equal(readGitCommit(detached), C);
    assert.equal(readGitCommit(tree(join(tmp, 'g5'), { 'package.json': '{}' })), null, 'no .git');
    assert.equal(readGitCommit(tree(join(tmp, 'g6'), { '.git/HEAD': 'ref: refs/heads/gone\n' })), null, 'dangling ref');
    assert.equal(readGitCommit(tree(join(tmp, 'g7'), { '.git': 'not a gitdir line' })), null);
  });

  test("provenance: package.json's version, git's own HEAD, libtorch as PyTorch names it, the device", () => {
    const p = provenance('cuda:1');
    assert.equal(p.locus, JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version);
    assert.equal(p.device, 'cuda:1');
    assert.equal(p.node, process.version);
    const git = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' });
    if (git.status === 0) assert.equal(p.commit, git.stdout.trim(), 'the commit git itself reports');
    else assert.equal(p.commit, existsSync(join(root, '.git')) ? p.commit : null);
    const py = spawnSync('/usr/bin/python3', ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    if (py.status === 0) {
      // Debian's python3-torch and the addon's libtorch are one build: the same release (Python adds a0/+cpu)
      const release = (v: string) => /^\d+\.\d+\.\d+/.exec(v)?.[0];
      assert.equal(release(p.torch), release(py.stdout.trim()));
    } else assert.match(p.torch, /^\d+\.\d+/);
  });
});

const tiny = resolveConfig({
  method: 'dino',
  seed: 1,
  model: { imgSize: 16, patchSize: 4, dim: 32, depth: 1, heads: 2 },
  dino: { outDim: 64, hiddenDim: 64, bottleneckDim: 16 },
});

/** A run directory with one checkpoint, as the trainer writes it. */
function fakeRun(dir: string): string {
  const p = createRun(dir, tiny);
  const m = buildMethod(tiny);
  const ck = saveCheckpoint(
    p.checkpoints,
    { student: m.student.stateDict(), teacher: m.teacher?.stateDict() ?? null, optim: new Map(), rng: new Map() },
    {
      format: CHECKPOINT_FORMAT,
      method: 'dino',
      step: 2,
      epoch: 0,
      stepInEpoch: 2,
      stepsPerEpoch: 10,
      optimizerStep: 2,
      configHash: configHash(tiny),
      seed: 1,
      loss: 4,
      savedAt: new Date(0).toISOString(),
    },
    tiny,
  );
  m.student.dispose();
  m.teacher?.dispose();
  return ck;
}

/** A labelled image folder (class layout), n PNGs per class. */
async function folder(dir: string, classes: string[], n: number): Promise<string> {
  for (const [c, name] of classes.entries()) {
    mkdirSync(join(dir, name), { recursive: true });
    for (let i = 0; i < n; i++) {
      const px = Buffer.alloc(12 * 12 * 3, (c * 120 + i * 9) % 256);
      await sharp(px, { raw: { width: 12, height: 12, channels: 3 } })
        .png()
        .toFile(join(dir, name, `${i}.png`));
    }
  }
  return dir;
}

describe('provenance in a run, its checkpoint and its eval records; records keyed by (probe, dataset)', () => {
  const dir = join(tmp, 'run');
  const expected = { ...provenance('cpu') };
  let ckPath = '';

  test('config.json carries provenance; readRunConfig gives the config without it; a rewrite keeps the first', () => {
    ckPath = fakeRun(dir);
    const raw = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.deepEqual(raw.provenance, expected);
    const cfg = readRunConfig(dir);
    assert.equal('provenance' in cfg, false);
    assert.doesNotThrow(() => resolveConfig(cfg), 'the stripped config still resolves (strict schema)');
    assert.deepEqual(readRunProvenance(dir), expected);
    // a resume that rewrites config.json (new length) keeps the provenance of the run's creation
    const old = { ...raw, provenance: { ...raw.provenance, commit: C } };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(old));
    writeRunConfig(dir, { ...cfg, optim: { ...cfg.optim, steps: 99 } });
    const again = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    assert.equal(again.provenance.commit, C);
    assert.equal(again.optim.steps, 99);
    writeFileSync(join(dir, 'config.json'), JSON.stringify(raw));
  });

  test('checkpoint metadata carries provenance (under the checksum)', () => {
    const meta = loadMetadata(ckPath);
    assert.deepEqual(JSON.parse(meta['locus.provenance'] as string), expected);
    const ck = loadCheckpoint(ckPath);
    assert.deepEqual(ck.provenance, expected);
    disposeCheckpoint(ck);
  });

  test('every eval record carries provenance; a second dataset of one probe gets its own file', async () => {
    const common = { progress: false, batchSize: 16, seed: 0, cacheDir: null };
    const fm = await runEval('knn', {
      checkpoint: dir,
      options: {
        ...common,
        train: { kind: 'fashion-mnist', split: 'train', length: 30 },
        test: { kind: 'fashion-mnist', split: 'test', length: 10 },
      },
    });
    assert.deepEqual(fm.provenance, expected);
    const photos = await folder(join(tmp, 'photos'), ['cat', 'dog'], 5);
    const ph = await runEval('knn', {
      checkpoint: dir,
      options: { ...common, train: { kind: 'folder', root: photos }, test: null, testFraction: 0.4 },
    });
    assert.deepEqual(ph.provenance, expected);
    const files = readdirSync(join(dir, 'evals')).filter((f) => f.endsWith('.json'));
    // the key rule, computed here by hand: folder-<dir name>-<first 6 hex of sha256(root as recorded)>
    const recordedRoot = String(((ph.data as { test: { root: string } }).test as { root: string }).root);
    const key = `folder-${basename(recordedRoot)}-${createHash('sha256').update(recordedRoot).digest('hex').slice(0, 6)}`;
    assert.deepEqual(files.sort(), [`knn@${key}.json`, 'knn@fashion-mnist.json'].sort());
    assert.equal(JSON.parse(readFileSync(join(dir, 'evals', 'knn@fashion-mnist.json'), 'utf8')).top1, fm.top1);
    assert.equal(JSON.parse(readFileSync(join(dir, 'evals', `knn@${key}.json`), 'utf8')).top1, ph.top1);
    // the random init baseline is keyed the same way, beside its run's record
    const random = await runEval('knn', {
      checkpoint: 'random:0',
      randomConfig: { imgSize: 16, patchSize: 4, dim: 32, depth: 1, heads: 2 },
      options: {
        ...common,
        outDir: null,
        train: { kind: 'fashion-mnist', split: 'train', length: 30 },
        test: { kind: 'fashion-mnist', split: 'test', length: 10 },
      },
    });
    assert.deepEqual(random.provenance, expected);
    assert.equal(basename(writeEval(dir, 'knn_random_init', random)), 'knn_random_init@fashion-mnist.json');
    // an older run's file name still reads
    writeFileSync(join(dir, 'evals', 'seg.json'), JSON.stringify({ kind: 'seg', miou: 0.5 }));
    const evals = readEvals(dir);
    assert.deepEqual(
      Object.keys(evals).sort(),
      [`knn@${key}`, 'knn@fashion-mnist', 'knn_random_init@fashion-mnist', 'seg'].sort(),
    );
    assert.equal(latestEval(evals, 'knn'), evals[`knn@${key}`], 'the later trained record');
    assert.equal(latestEval(evals, 'seg')?.miou, 0.5);
  });

  test('dataset keys and names', () => {
    assert.equal(datasetKey({ kind: 'fashion-mnist', split: 'test', length: 1000 }), 'fashion-mnist');
    assert.equal(datasetKey({ kind: 'scenes', split: 'eval', length: 200 }), 'scenes', 'length is protocol, not data');
    assert.equal(datasetKey({ kind: 'scenes', split: 'eval', length: 9, size: 96, seed: 3 }), 'scenes-96px-seed3');
    const a = datasetKey({ kind: 'folder', root: '/data/a/images' });
    const b = datasetKey({ kind: 'folder', root: '/data/b/images' });
    assert.match(a, /^folder-images-[0-9a-f]{6}$/);
    assert.notEqual(a, b, 'two folders of one name are two datasets');
    assert.equal(evalFileName('seg', { data: { train: { kind: 'parts' }, test: null } }), 'seg@parts.json');
    assert.equal(evalFileName('knn', {}), 'knn@unknown.json');
    assert.deepEqual(parseEvalName('knn_random_init@folder-x-123abc'), {
      probe: 'knn',
      dataset: 'folder-x-123abc',
      randomInit: true,
    });
    assert.deepEqual(parseEvalName('linear'), { probe: 'linear', dataset: null, randomInit: false });
  });
});
