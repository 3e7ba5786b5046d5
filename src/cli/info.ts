// `locus info`: the engine build (torch version, BLAS, threads, CUDA, c10d backends) and the environment.
import { availableParallelism, cpus, totalmem } from 'node:os';
import type { Command } from 'commander';
import { engineInfo } from '../engine/index.js';
import { buildFlags } from '../engine/native.js';
import { EVAL_KINDS } from '../eval/index.js';
import { methodNames } from '../methods/index.js';
import { action, packageVersion, printJson } from './common.js';

export function info(): Record<string, unknown> {
  const e = engineInfo();
  const b = buildFlags();
  return {
    locus: packageVersion(),
    node: process.version,
    torch: e.torchVersion,
    blas_library: e.blasLibrary,
    blas_config: e.blasConfig,
    openblas: /openblas/i.test(`${e.blasConfig} ${e.blasLibrary}`),
    threads: e.threads,
    cores: availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown',
    memory_gb: Number((totalmem() / 2 ** 30).toFixed(1)),
    cuda: e.cuda, // a CUDA device is usable now
    cuda_devices: e.cudaDevices,
    cuda_build: b.cuda, // the addon is linked against a CUDA libtorch
    gloo: b.gloo, // c10d backends compiled in
    nccl: b.nccl,
    malloc_arena_max: process.env.MALLOC_ARENA_MAX ?? null,
    omp_wait_policy: process.env.OMP_WAIT_POLICY ?? null,
    methods: methodNames(),
    eval_kinds: [...EVAL_KINDS],
  };
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description('show the engine build (torch, BLAS, threads, CUDA, c10d backends) and what Locus offers')
    .option('--json', 'print one JSON object as the last line')
    .addHelpText('after', '\nExamples:\n  $ locus info\n  $ locus info --json | tail -1')
    .action(
      action(async (f: { json?: boolean }) => {
        const i = info();
        if (f.json) {
          printJson(i);
          return 0;
        }
        const w = (k: string, v: unknown) =>
          process.stdout.write(`${k.padEnd(14)} ${Array.isArray(v) ? v.join(', ') : v}\n`);
        w('locus', i.locus);
        w('node', i.node);
        w('torch', i.torch);
        w('BLAS', `${i.blas_config} (${i.blas_library})`);
        w('threads', `${i.threads} of ${i.cores} cores`);
        w(
          'CUDA',
          i.cuda
            ? `${i.cuda_devices} device(s)`
            : i.cuda_build
              ? 'no device (this libtorch build has CUDA)'
              : 'no (this libtorch build is CPU-only)',
        );
        w('c10d', [i.gloo ? 'gloo' : null, i.nccl ? 'nccl' : null].filter((x) => x).join(', ') || 'none');
        w('MALLOC_ARENA_MAX', i.malloc_arena_max ?? 'not set (the addon calls mallopt(M_ARENA_MAX, 1))');
        w('OMP_WAIT_POLICY', i.omp_wait_policy ?? 'not set (libgomp spins between parallel regions)');
        w('methods', i.methods);
        w('eval kinds', i.eval_kinds);
        if (!i.openblas)
          process.stderr.write(
            'locus: warning: libtorch is not using OpenBLAS; steps will be ~30x slower (run npm run setup)\n',
          );
      }),
    );
}
