// The method comparison (`npm run compare`): pretrain every method with the same budget (steps, batch,
// model, data) on Fashion-MNIST scenes through the CLI, for several seeds; evaluate every run with every
// probe, on both networks of a method with an EMA teacher (the one its reference evaluates marked "ref"),
// plus a random-init backbone of the same architecture; write bench/COMPARISON.md (method × probes, mean ±
// sample std over seeds with 95% bootstrap intervals, the supervised − random sensitivity row, the claims)
// and one HTML report of all runs.
//
// Usage: node dist/bench/compare.js [--steps N] [--seeds 0,1] [--methods dino,loca,...] [--evals knn,seg,...]
//        [--out DIR] [--md FILE] [--html FILE] [--set key=value ...] [--mini] [--fresh] [--no-report] [--no-random]
//        [--one-backbone]
//        node dist/bench/compare.js --from A.json,B.json [--md FILE]
//        node dist/bench/compare.js --weights a.pth,b.safetensors [--runs runs/x,…] [--heads N] [--size PX]
//          [--evals …] [--seeds …] [--mini] [--md FILE]: off-the-shelf checkpoints beside runs (bench/zoo.ts, ZOO.md)
// Every run also writes its records next to the table (COMPARISON.json); --from renders one table from
// several such files (seeds or methods run on different machines or in several sittings), running nothing.
// --mini: CI miniature (supervised, dino and byol, 1 seed, a few steps, a small model, tiny probes).
// Runs are reused when their directory already holds a finished run of the same steps (--fresh: redo).
// Options are parsed in bench/compare/args.ts; running in runs.ts; the table in table.ts; --from in saved.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { runNetworks, vitConfigOf } from '../src/eval/index.js';
import { methodNames } from '../src/methods/index.js';
import { collectRun } from '../src/report/collect.js';
import { type ReportRun, renderReport } from '../src/report/html.js';
import { readRunConfig } from '../src/train/run.js';
import { MINI_EVAL, PROBES, parse } from './compare/args.js';
import { evaluate, log, pretrain, type RunRecord, stepSeconds, summary } from './compare/runs.js';
import { merge, recordsPath, type SavedComparison } from './compare/saved.js';
import { machine, markdown, rowLabel } from './compare/table.js';
import { zoo } from './zoo.js';

async function main(): Promise<void> {
  const a = parse();
  if (a.from.length > 0) return merge(a);
  if (a.zoo) {
    // the zoo runs the plain probes (one eval kind each, default data) on every checkpoint
    const kinds = a.evals.filter((e) => PROBES.some((p) => p.name === e && p.kind === e));
    process.exitCode = await zoo({
      ...a.zoo,
      evals: kinds,
      random: a.random,
      probeOptions: a.mini ? Object.fromEntries(kinds.map((k) => [k, MINI_EVAL[k] ?? {}])) : {},
      command: `npm run compare -- ${process.argv.slice(2).join(' ')}`.trim(),
      machine: machine(),
    });
    return;
  }
  const startLoad = loadavg();
  const t0 = performance.now();
  const command = `npm run compare -- ${process.argv.slice(2).join(' ')}`.trim();
  const available = new Set(methodNames());
  mkdirSync(a.out, { recursive: true });
  const records: RunRecord[] = [];
  for (const method of a.methods) {
    for (const seed of a.seeds) {
      const dir = join(a.out, `${method.replace(/[^A-Za-z0-9_.-]/g, '_')}-seed${seed}`);
      const rec: RunRecord = { method, seed, dir, ok: false, evals: {}, evalS: {} };
      records.push(rec);
      if (!available.has(method)) {
        rec.error = `method '${method}' is not registered (have: ${[...available].join(', ')})`;
        log(rec.error);
        continue;
      }
      const p = pretrain(a, method, seed, dir);
      rec.ok = p.ok;
      rec.error = p.error;
      rec.pretrainS = p.seconds;
      if (!p.ok) {
        log(`${method} seed ${seed} failed: ${p.error}`);
        continue;
      }
      rec.stepS = stepSeconds(dir);
      const nets = runNetworks(dir);
      if (nets.networks.length > 1) Object.assign(rec, { network: nets.reference, reference: true });
      log(`${method} seed ${seed}: ${rec.stepS.toFixed(2)} s/step; evaluating (${nets.reference})`);
      const te = performance.now();
      Object.assign(rec, await evaluate(a, dir, seed));
      if (a.bothBackbones)
        for (const net of nets.networks.filter((n) => n !== nets.reference)) {
          log(`${method} seed ${seed}: evaluating the ${net}`);
          const other: RunRecord = { ...rec, network: net, reference: false, evals: {}, evalS: {} };
          Object.assign(other, await evaluate(a, dir, seed, { backbone: net }));
          records.push(other);
        }
      if (records.length <= 2) {
        // A projection from the first run (methods differ in step cost: a rough guide only).
        const per = (Number.isFinite(p.seconds) ? p.seconds : a.steps * rec.stepS) + (performance.now() - te) / 1000;
        const total = per * (a.methods.length * a.seeds.length + a.seeds.length * 0.3);
        log(
          `projected total ≈ ${(total / 60).toFixed(0)} min for ${a.methods.length} methods × ${a.seeds.length} seeds (first run ${(per / 60).toFixed(1)} min)`,
        );
      }
    }
  }
  // The untrained baseline: the same architecture, random weights, one per seed.
  const random: RunRecord[] = [];
  const first = records.find((r) => r.ok);
  const runConfig = first ? readRunConfig(first.dir) : null;
  if (runConfig && a.random) {
    const cfg = vitConfigOf(runConfig);
    for (const seed of a.seeds) {
      log(`random init seed ${seed}: evaluating`);
      const rec: RunRecord = { method: 'random', seed, dir: '', ok: true, network: null, evals: {}, evalS: {} };
      Object.assign(rec, await evaluate(a, `random:${seed}`, seed, { randomConfig: cfg }));
      random.push(rec);
    }
  }
  if (a.html) {
    const runs: ReportRun[] = [];
    for (const r of records.filter((x) => x.ok && x.reference !== false)) {
      try {
        runs.push(await collectRun(r.dir, { name: `${r.method}-seed${r.seed}` }));
      } catch (e) {
        log(`report: ${r.dir}: ${(e as Error).message.split('\n')[0]}`);
      }
    }
    writeFileSync(
      a.html,
      await renderReport(runs, { title: `Locus method comparison (${a.steps} steps, seeds ${a.seeds.join(',')})` }),
    );
    log(`wrote ${relative(process.cwd(), a.html)}`);
  }
  const totalS = (performance.now() - t0) / 1000;
  mkdirSync(resolve(a.md, '..'), { recursive: true });
  const host = machine();
  writeFileSync(a.md, markdown(a, records, random, startLoad, totalS, command, host, runConfig));
  const saved: SavedComparison = {
    command,
    machine: host,
    startLoad,
    totalS,
    steps: a.steps,
    seeds: a.seeds,
    methods: a.methods,
    evals: a.evals,
    sets: a.sets,
    records,
    random,
  };
  writeFileSync(recordsPath(a.md), `${JSON.stringify(saved)}\n`);
  log(`wrote ${relative(process.cwd(), a.md)} (${(totalS / 60).toFixed(1)} min)`);
  const summaryJson = {
    md: a.md,
    html: a.html,
    minutes: totalS / 60,
    runs: [...records, ...random].map((r) => ({
      method: r.method,
      row: rowLabel(r),
      seed: r.seed,
      ok: r.ok,
      error: r.error,
      step_s: r.stepS,
      evals: Object.fromEntries(Object.entries(r.evals).map(([k, v]) => [k, summary(k, v)])),
    })),
  };
  process.stdout.write(`${JSON.stringify(summaryJson)}\n`);
  if (records.every((r) => !r.ok)) process.exitCode = 1;
}

main().catch((e) => {
  process.stderr.write(`compare: ${(e as Error).message}\n`);
  process.exit(1);
});
