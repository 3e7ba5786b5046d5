// Run directories at the edges of their life (issue 15), one test per case, through the CLI on a tiny
// DINO: (1) a run stopped before its first checkpoint resumes from step 0, and a failed creation leaves
// nothing; (2) resume removes temp files of killed writes, and only those; (3) one writer per run (a
// lock), a dead holder's lock is taken over; (4) errors name their file (too few samples, a corrupt
// config.json, a full disk mid-run with the last good checkpoint); (5) report/export refuse a run's own
// files; (6) the report reads nothing outside the run directories it is given; (7) Ctrl-C and SIGTERM
// through `npx locus pretrain` save and exit 0, with no orphan left training.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs, {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { openDataset } from '../src/data/datasets.js';
import { loadSegSamples, SEG_SAMPLES_FILE } from '../src/eval/samples.js';
import { collectRun } from '../src/report/collect.js';
import { disposeCheckpoint, loadCheckpoint } from '../src/train/checkpoint.js';
import { BIN, CLI_ENV, ROOT, type Run, runLocus, TINY_RUN } from './fixtures/cli.js';

const tmp = mkdtempSync(join(tmpdir(), 'locus-rundirs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** 1-block ViT of width 32 on 32x32 scenes, batch 8, 6 steps per epoch. */
const TINY = TINY_RUN.flatMap((s) => ['--set', s]);
const ENV = CLI_ENV;

const locus = (args: string[], env: Record<string, string> = {}): Run => runLocus(tmp, args, { env });

/** The run's one error line (fails with the whole stderr and exit status otherwise). */
function errorLine(r: Run, what = ''): string {
  assert.notEqual(r.code, 0, `${what}: expected a failure; stderr: ${r.stderr}`);
  const lines = r.stderr.split('\n').filter((l) => l.startsWith('locus: error'));
  assert.equal(lines.length, 1, `${what}: exit ${r.code}, stderr: ${r.stderr}`);
  return lines[0] as string;
}

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const steps = (dir: string) =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l)
    .map((l) => JSON.parse(l) as Record<string, number>);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, ok: () => boolean, ms = 120_000): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const exited = (c: ChildProcess) =>
  new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));

function background(args: string[], env: Record<string, string> = {}): { child: ChildProcess; err: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: tmp, env: { ...process.env, ...ENV, ...env } });
  let err = '';
  child.stderr?.on('data', (d) => {
    err += d;
  });
  child.stdout?.resume();
  return { child, err: () => err };
}

const hasRows = (dir: string) =>
  existsSync(join(dir, 'metrics.jsonl')) && statSync(join(dir, 'metrics.jsonl')).size > 0;

/** Can this machine give a process its own tmpfs (unprivileged user + mount namespace)? */
const TMPFS = spawnSync('unshare', ['-rm', 'sh', '-c', `mount -t tmpfs -o size=64k none ${tmpdir()} && echo ok`], {
  encoding: 'utf8',
}).stdout?.includes('ok');
const noTmpfs = TMPFS ? false : 'needs unshare -rm (user + mount namespaces) to mount a small tmpfs';

/** Runs a bash script in its own mount namespace (as mapped root), where $M is a tmpfs of `bytes`. */
function inTmpfs(bytes: number, script: string): string {
  const m = join(tmp, `tmpfs-${bytes}-${Date.now()}`);
  mkdirSync(m);
  const r = spawnSync(
    'unshare',
    [
      '-rm',
      'bash',
      '-c',
      `set -u; mount -t tmpfs -o size=${bytes} none "$M"; L="${process.execPath} ${BIN}"; ${script}`,
    ],
    { encoding: 'utf8', env: { ...process.env, ...ENV, M: m }, timeout: 300_000 },
  );
  return `${r.stdout}\n${r.stderr}`;
}

describe('run directories', () => {
  test('1: a run stopped before its first checkpoint resumes from step 0; a failed creation leaves nothing', async (t) => {
    // killed (SIGKILL) after training started, before any checkpoint
    const dir = join(tmp, 'stranded');
    const a = background(['pretrain', '--steps', '100000', ...TINY, '--set', 'train.ckptEvery=100000', '--out', dir]);
    await until('the first metrics row', () => hasRows(dir));
    a.child.kill('SIGKILL');
    await exited(a.child);
    assert.deepEqual(readdirSync(join(dir, 'checkpoints')), []);
    assert.match(
      errorLine(locus(['pretrain', ...TINY, '--out', dir]), '--out again'),
      /already holds a run; use --resume/,
    );
    const r = locus(['pretrain', '--resume', dir, '--steps', '4']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /has no checkpoint yet: starting it from step 0 with its saved config\.json/);
    // the same as an uninterrupted 4-step run of that config, step for step
    const fresh = join(tmp, 'stranded-ref');
    assert.equal(
      locus(['pretrain', '--steps', '4', ...TINY, '--set', 'train.ckptEvery=100000', '--out', fresh]).code,
      0,
    );
    assert.deepEqual(
      steps(dir).map((x) => [x.step, x.loss]),
      steps(fresh).map((x) => [x.step, x.loss]),
    );
    assert.equal(steps(dir).length, 4);
    assert.ok(existsSync(join(dir, 'checkpoints', 'step-000004.safetensors')));

    // a full disk at creation: one line naming the file, and nothing left behind
    if (!TMPFS) t.diagnostic(`full-disk part skipped: ${noTmpfs}`);
    else {
      const out = inTmpfs(
        256 << 10,
        `dd if=/dev/zero of="$M/fill" bs=4k 2>/dev/null; $L pretrain --steps 2 ${TINY.map((s) => `'${s}'`).join(' ')} --out "$M/run"; echo "exit=$?"; echo "left: $(ls -A "$M" | tr '\\n' ' ')"`,
      );
      assert.match(
        out,
        /locus: error: cannot create run directory \S+\/run \(nothing was left behind\): cannot write \S+\/run\/config\.json: ENOSPC/,
      );
      assert.match(out, /exit=1/);
      assert.match(out, /left: fill $/m, out);
    }
  });

  test('2: resume removes temp files of killed checkpoint writes (dead pids, this run’s names only)', () => {
    const dir = join(tmp, 'temps');
    const r0 = locus(['pretrain', '--steps', '4', ...TINY, '--set', 'train.ckptEvery=2', '--out', dir], {
      LOCUS_TEST_SIGNAL_AT_STEP: '2',
    });
    assert.equal(r0.code, 0, r0.stderr);
    const dead = spawnSync('true').pid as number; // exited: its pid names a killed writer
    const ck = join(dir, 'checkpoints');
    mkdirSync(join(dir, 'evals'), { recursive: true });
    const stale = [
      join(ck, `.step-000004.safetensors.${dead}.0a1b2c3d.tmp`),
      join(dir, `metrics.jsonl.${dead}.tmp`),
      join(dir, 'evals', `knn.json.${dead}.tmp`),
      join(dir, 'evals', `.seg_head.safetensors.${dead}.99aabbcc.tmp`),
    ];
    const kept = [
      join(ck, `.step-000004.safetensors.${process.pid}.0a1b2c3d.tmp`), // a live process: maybe writing
      join(ck, 'notes.tmp'), // not a name Locus writes
      join(dir, `other.json.${dead}.tmp`),
    ];
    for (const f of [...stale, ...kept]) writeFileSync(f, Buffer.alloc(4096, 7));
    const r = locus(['pretrain', '--resume', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /removed 4 temp file\(s\) of killed writes/);
    for (const f of stale) assert.ok(!existsSync(f), `${f} is removed`);
    for (const f of kept) assert.ok(existsSync(f), `${f} is kept`);
    assert.deepEqual(
      readdirSync(ck).filter((f) => f.startsWith('step-')),
      ['step-000002.safetensors', 'step-000004.safetensors'],
    );
  });

  test('3: one writer per run: a second refuses naming the holder; a dead holder’s lock is taken over', async () => {
    const dir = join(tmp, 'locked');
    assert.equal(locus(['pretrain', '--steps', '2', ...TINY, '--out', dir]).code, 0);
    assert.ok(!existsSync(join(dir, 'lock')), 'the lock goes with its process');
    const a = background(['pretrain', '--resume', dir, '--steps', '100000', '--set', 'train.ckptEvery=5']);
    await until('the first resumed rows', () => steps(dir).length > 3);
    const lock = JSON.parse(readFileSync(join(dir, 'lock'), 'utf8'));
    assert.equal(lock.pid, a.child.pid);
    assert.equal(lock.host, hostname());
    const b = locus(['pretrain', '--resume', dir, '--steps', '100000']);
    assert.match(
      errorLine(b, 'second writer'),
      new RegExp(`locked by pid ${a.child.pid} on ${hostname()} .*another locus process is writing it`),
    );
    a.child.kill('SIGKILL'); // leaves its lock behind
    await exited(a.child);
    assert.ok(existsSync(join(dir, 'lock')));
    const last = steps(dir).at(-1)?.step as number;
    const c = locus(['pretrain', '--resume', dir, '--steps', String(last + 3)]);
    assert.equal(c.code, 0, c.stderr);
    assert.match(c.stderr, new RegExp(`taking over the lock of .* from pid ${a.child.pid} .*no longer running`));
    assert.ok(!existsSync(join(dir, 'lock')));
    const s = steps(dir).map((x) => x.step);
    assert.deepEqual(
      s,
      Array.from({ length: s.length }, (_, i) => i + 1),
      'metrics rows 1..N once each',
    );
    // a holder on another host cannot be checked from here: refused, and the file to remove is named
    const other = { pid: 4242, host: 'elsewhere', started: '2026-01-01T00:00:00.000Z', procStart: null, command: '' };
    writeFileSync(join(dir, 'lock'), JSON.stringify(other));
    const d = locus(['pretrain', '--resume', dir, '--steps', String(last + 4)]);
    assert.match(errorLine(d, 'other host'), /locked by pid 4242 on another host, elsewhere .*remove the lock file/);
    assert.deepEqual(JSON.parse(readFileSync(join(dir, 'lock'), 'utf8')), other, 'the lock is left as it was');
  });

  test('4: errors name their file: too few samples, a corrupt config.json, a full disk mid-run', (t) => {
    const few = join(tmp, 'few');
    const r = locus(['pretrain', '--steps', '2', ...TINY, '--set', 'data.dataset.length=3', '--out', few]);
    assert.match(
      errorLine(r, 'fewer samples than a batch'),
      /data\.dataset has 3 samples, fewer than one step \(optim\.batchSize 8 × optim\.accumulate 1 × 1 processes\)/,
    );
    assert.ok(!existsSync(few), 'no run directory is created');

    const dir = join(tmp, 'badconfig');
    assert.equal(locus(['pretrain', '--steps', '2', ...TINY, '--out', dir]).code, 0);
    writeFileSync(join(dir, 'config.json'), '{"method": "dino", "optim": {"lr": 0.0005, "steps');
    for (const args of [
      ['pretrain', '--resume', dir],
      ['report', dir, '--out', join(tmp, 'bad.html')],
    ]) {
      const line = errorLine(locus(args), args[0]);
      assert.match(line, new RegExp(`${join(dir, 'config.json')} is not valid JSON \\(Unterminated string`));
    }

    if (!TMPFS) {
      t.diagnostic(`full-disk part skipped: ${noTmpfs}`);
      return;
    }
    const size = statSync(join(dir, 'checkpoints', 'step-000002.safetensors')).size;
    // room for the config, metrics, lock and one checkpoint: the second checkpoint cannot fit
    assert.ok(size > 48 << 10, `a checkpoint (${size} bytes) is larger than the slack`);
    const bytes = Math.ceil((size + (40 << 10)) / 4096) * 4096;
    const sets = TINY.map((s) => `'${s}'`).join(' ');
    const out = inTmpfs(
      bytes,
      `$L pretrain --steps 6 ${sets} --set train.ckptEvery=2 --out "$M/run"; echo "exit=$?"; echo "files: $(ls -A "$M/run/checkpoints" | tr '\\n' ' ')"; mount -o remount,size=${4 * bytes} "$M"; $L pretrain --resume "$M/run" > /dev/null 2>&1; echo "resumed=$?"`,
    );
    assert.match(
      out,
      /locus: error: cannot write checkpoint \S+\/step-000004\.safetensors \(ENOSPC: no space left on device[^)]*\); the last good checkpoint is \S+\/step-000002\.safetensors, intact \(SHA-256 verified\); continue with: locus pretrain --resume/,
      out,
    );
    assert.match(out, /exit=1/);
    assert.match(out, /files: step-000002\.safetensors $/m, 'no temp file left');
    assert.match(out, /resumed=0/, 'the run continues once there is room');
  });

  test('5: report and export refuse to write over a file the run owns', () => {
    const dir = join(tmp, 'owned');
    assert.equal(locus(['pretrain', '--steps', '2', ...TINY, '--out', dir]).code, 0);
    const ckpt = join(dir, 'checkpoints', 'step-000002.safetensors');
    const before = [sha(join(dir, 'config.json')), sha(ckpt), sha(join(dir, 'metrics.jsonl'))];
    const cases: [string[], RegExp][] = [
      [['report', dir, '--no-pictures', '--out', join(dir, 'config.json')], /config\.json of the run directory/],
      [['report', dir, '--no-pictures', '--out', join(dir, 'metrics.jsonl')], /metrics\.jsonl of the run directory/],
      [['export', '--checkpoint', dir, '--out', ckpt], /checkpoints\/step-000002\.safetensors of the run directory/],
      [['export', '--checkpoint', dir, '--out', join(dir, 'checkpoints', 'step-000002')], /checkpoints\/step-000002/],
      [
        ['export', '--format', 'onnx', '--checkpoint', dir, '--out', join(dir, 'evals', 'vit.onnx')],
        /evals\/vit\.onnx/,
      ],
    ];
    for (const [args, re] of cases) {
      const line = errorLine(locus(args), args.join(' '));
      assert.match(line, re);
      assert.match(line, /a file the run owns/);
    }
    assert.deepEqual([sha(join(dir, 'config.json')), sha(ckpt), sha(join(dir, 'metrics.jsonl'))], before);
    disposeCheckpoint(loadCheckpoint(ckpt)); // still passes its checksum
    // the run's own report spot, and files beside the run, are fine
    const ok = locus(['report', dir, '--no-pictures', '--out', join(dir, 'report.html')]);
    assert.equal(ok.code, 0, ok.stderr);
    const ex = locus(['export', '--checkpoint', dir, '--out', join(tmp, 'owned-vit.safetensors')]);
    assert.equal(ex.code, 0, ex.stderr);
  });

  test('6: the report reads only the run directory: no dataset path named in evals/seg.json is opened', async () => {
    const dir = join(tmp, 'report-run');
    assert.equal(locus(['pretrain', '--steps', '2', ...TINY, '--out', dir]).code, 0);
    const seg = ['train.length=16', 'test.length=4', 'steps=3', 'batchSize=8'].flatMap((s) => ['--set', s]);
    const e = locus(['eval', 'seg', '--checkpoint', dir, ...seg]);
    assert.equal(e.code, 0, e.stderr);
    // someone else's run directory: its seg.json names a folder on the reporting user's machine
    const outside = join(tmp, 'private-photos');
    mkdirSync(join(outside, 'holiday'), { recursive: true });
    const magenta = Buffer.alloc(32 * 32 * 3).map((_, i) => (i % 3 === 1 ? 0 : 255));
    await sharp(magenta, { raw: { width: 32, height: 32, channels: 3 } })
      .png()
      .toFile(join(outside, 'holiday', 'a.png'));
    const segName = readdirSync(join(dir, 'evals')).find((f) => /^seg@.*\.json$/.test(f));
    assert.ok(segName, 'the seg eval wrote its record');
    const segFile = join(dir, 'evals', segName);
    const result = JSON.parse(readFileSync(segFile, 'utf8'));
    result.data.test = { kind: 'folder', root: outside };
    writeFileSync(segFile, JSON.stringify(result));

    const seen: string[] = [];
    const restore = traceFs(seen);
    let run: Awaited<ReturnType<typeof collectRun>>;
    let probe: Awaited<ReturnType<Awaited<ReturnType<typeof openDataset>>['get']>>;
    try {
      run = await collectRun(dir);
      const during = [...seen];
      probe = await (await openDataset({ kind: 'folder', root: outside })).get(0); // the trace does see such reads
      assert.deepEqual(
        during.filter((p) => p.startsWith(outside)),
        [],
        'nothing outside the run directory is read',
      );
      assert.ok(
        seen.some((p) => p.startsWith(outside)),
        'the fs trace records dataset reads',
      );
    } finally {
      restore();
    }
    const samplesFile = join(dir, 'evals', SEG_SAMPLES_FILE);
    const stored = loadSegSamples(samplesFile);
    assert.equal(stored.images.length, 4);
    assert.ok(statSync(samplesFile).size < 1 << 20, 'small');

    const pics = run.pictures?.images ?? [];
    assert.equal(pics.length, 4);
    for (const [i, p] of pics.entries()) {
      assert.deepEqual(p.input.data, stored.images[i]?.data, `picture ${i} is the stored sample`);
      assert.deepEqual(p.segGt?.data, stored.masks?.[i]);
      assert.ok(p.segPred, 'the seg head predicts on the stored samples');
      assert.notDeepEqual(p.input.data, probe.image.data);
    }
    // a file of the run that links outside it is not followed
    rmSync(samplesFile);
    symlinkSync(join(outside, 'holiday', 'a.png'), samplesFile);
    const r = locus(['report', dir, '--out', join(tmp, 'linked.html')]);
    assert.match(
      errorLine(r, 'a link outside'),
      /seg_samples\.safetensors resolves to .*private-photos.*outside its run directory/,
    );
  });

  test('7: Ctrl-C and SIGTERM through `npx locus pretrain` save a checkpoint and exit 0; no orphan trains on', async () => {
    const npx = (out: string) => {
      const child = spawn('npx', ['locus', 'pretrain', '--steps', '100000', ...TINY, '--out', out], {
        cwd: ROOT,
        env: { ...process.env, ...ENV },
        detached: true, // its own process group, as a terminal's foreground job
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr?.on('data', (d) => {
        err += d;
      });
      child.stdout?.resume();
      return { child, err: () => err };
    };
    for (const [name, send] of [
      ['ctrl-c', (c: ChildProcess) => process.kill(-(c.pid as number), 'SIGINT')], // the terminal signals the group
      ['sigterm', (c: ChildProcess) => c.kill('SIGTERM')], // a supervisor signals npx only
    ] as const) {
      const out = join(tmp, `npx-${name}`);
      const n = npx(out);
      await until(`${name}: training under npx`, () => hasRows(out) && steps(out).length >= 2);
      send(n.child);
      const code = await exited(n.child);
      assert.equal(code, 0, `${name}: npx exit status; stderr: ${n.err()}`);
      assert.match(n.err(), /stopped at step \d+\/100000; continue with: locus pretrain --resume/);
      await until(`${name}: the training process is gone`, () => !existsSync(join(out, 'lock')), 20_000);
      const ck = readdirSync(join(out, 'checkpoints'));
      assert.equal(ck.length, 1, `${name}: one checkpoint, written on the signal`);
      const c = loadCheckpoint(join(out, 'checkpoints', ck[0] as string));
      assert.equal(c.info.step, steps(out).at(-1)?.step);
      disposeCheckpoint(c);
    }
  });
});

/** Records the path of every fs call that reads or opens (sync, callback and promise APIs) until restored. */
function traceFs(seen: string[]): () => void {
  const saved: [Record<string, unknown>, string, unknown][] = [];
  const wrap = (obj: Record<string, unknown>, names: string[]) => {
    for (const n of names) {
      const orig = obj[n] as (...a: unknown[]) => unknown;
      if (typeof orig !== 'function') continue;
      saved.push([obj, n, orig]);
      obj[n] = function (this: unknown, p: unknown, ...rest: unknown[]) {
        seen.push(String(p));
        return orig.call(this, p, ...rest);
      };
    }
  };
  const io = ['readFile', 'readdir', 'open', 'stat', 'lstat', 'access', 'opendir'];
  wrap(fs as unknown as Record<string, unknown>, [
    ...io,
    ...io.map((n) => `${n}Sync`),
    'existsSync',
    'createReadStream',
  ]);
  wrap(fsp as unknown as Record<string, unknown>, io);
  syncBuiltinESMExports();
  return () => {
    for (const [obj, n, orig] of saved) obj[n] = orig;
    syncBuiltinESMExports();
  };
}
