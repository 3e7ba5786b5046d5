// `locus export`: a checkpoint's evaluated backbone as timm/DINO-named safetensors (heads in a second file).
import type { Command } from 'commander';
import { disposeCheckpoint, loadCheckpoint } from '../train/checkpoint.js';
import { resolveConfig } from '../train/config.js';
import { exportSafetensors } from '../train/export.js';
import { buildMethod } from '../train/loop.js';
import { action, printJson } from './common.js';

interface ExportFlags {
  format: string;
  checkpoint: string;
  out: string;
  json?: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a checkpoint for PyTorch/timm (safetensors, timm/DINO key names)')
    .requiredOption('--checkpoint <path>', 'run directory (latest checkpoint) or checkpoint file')
    .requiredOption('--out <file>', 'output .safetensors file (heads go to <file>.heads.safetensors)')
    .option('--format <format>', 'safetensors (onnx is not built)', 'safetensors')
    .option('--json', 'print one JSON object as the last line')
    .addHelpText(
      'after',
      `
Examples:
  $ locus export --checkpoint runs/dino-short --out vit.safetensors
  # in Python: timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=4, embed_dim=192,
  #   depth=4, num_heads=3, num_classes=0).load_state_dict(safetensors.torch.load_file('vit.safetensors'))
The file's metadata records img_size, patch_size, embed_dim, depth, num_heads and the method.`,
    )
    .action(
      action(async (f: ExportFlags) => {
        if (f.format !== 'safetensors')
          throw new Error(`--format ${f.format} is not available (allowed: safetensors; ONNX export is not built)`);
        const ck = loadCheckpoint(f.checkpoint);
        try {
          const method = buildMethod(resolveConfig(ck.config));
          method.student.loadStateDict(ck.student);
          if (method.teacher) method.teacher.loadStateDict(ck.teacher);
          const r = exportSafetensors(method, f.out, { source_sha256: ck.sha256, source_step: String(ck.info.step) });
          process.stdout.write(`backbone: ${r.backbone} (${r.tensors} tensors)\n`);
          if (r.heads) process.stdout.write(`heads:    ${r.heads}\n`);
          if (f.json) printJson({ ...r, checkpoint: ck.path, step: ck.info.step, method: method.name });
        } finally {
          disposeCheckpoint(ck);
        }
        return 0;
      }),
    );
}
