// `locus export`: a checkpoint's evaluated backbone as timm/DINO-named safetensors (heads in a second file),
// or as an ONNX model of the backbone's eval forward pass at its native input size.
import type { Command } from 'commander';
import { disposeCheckpoint, loadCheckpoint } from '../train/checkpoint.js';
import { resolveConfig } from '../train/config.js';
import { exportSafetensors } from '../train/export.js';
import { exportOnnx } from '../train/export_onnx.js';
import { buildMethod } from '../train/loop.js';
import { refuseRunOwned } from '../train/run.js';
import { action, printJson } from './common.js';

const FORMATS = ['safetensors', 'onnx'];

interface ExportFlags {
  format: string;
  checkpoint: string;
  out: string;
  json?: boolean;
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('export a checkpoint for PyTorch/timm (safetensors, timm/DINO key names) or ONNX runtimes')
    .requiredOption('--checkpoint <path>', 'run directory (latest checkpoint) or checkpoint file')
    .requiredOption(
      '--out <file>',
      'output file: .safetensors (heads go to <file>.heads.safetensors) or .onnx (backbone only)',
    )
    .option('--format <format>', FORMATS.join(' or '), 'safetensors')
    .option('--json', 'print one JSON object as the last line')
    .addHelpText(
      'after',
      `
Examples:
  $ locus export --checkpoint runs/dino-short --out vit.safetensors
  # in Python: timm.create_model('vit_tiny_patch16_224', img_size=32, patch_size=4, embed_dim=192,
  #   depth=4, num_heads=3, num_classes=0).load_state_dict(safetensors.torch.load_file('vit.safetensors'))
  $ locus export --format onnx --checkpoint runs/dino-short --out vit.onnx
  # opset 17; input images [N,3,S,S] at the model's native size S (model.imgSize), N dynamic;
  # outputs cls [N,D] and patches [N,L,D] after the final norm. In Python:
  #   onnxruntime.InferenceSession('vit.onnx').run(None, {'images': x})
The files' metadata records img_size, patch_size, embed_dim, depth, num_heads and the method.`,
    )
    .action(
      action(async (f: ExportFlags) => {
        if (!FORMATS.includes(f.format))
          throw new Error(`unknown --format ${f.format} (allowed: ${FORMATS.join(', ')})`);
        // never write over a run's own files (its checkpoints, config, evals): the run would be unusable
        refuseRunOwned(f.out);
        if (f.format === 'safetensors') refuseRunOwned(f.out.replace(/(\.safetensors)?$/, '.heads.safetensors'));
        const ck = loadCheckpoint(f.checkpoint);
        try {
          const method = buildMethod(resolveConfig(ck.config));
          method.student.loadStateDict(ck.student);
          if (method.teacher) method.teacher.loadStateDict(ck.teacher);
          const source = { source_sha256: ck.sha256, source_step: String(ck.info.step) };
          if (f.format === 'onnx') {
            const r = exportOnnx(method.evalBackbone(), f.out, { method: method.name, ...source });
            process.stdout.write(
              `onnx: ${r.path} (opset ${r.opset}, ${r.nodes} nodes, ${r.initializers} initializers)\n`,
            );
            if (f.json) printJson({ ...r, checkpoint: ck.path, step: ck.info.step, method: method.name });
            return 0;
          }
          const r = exportSafetensors(method, f.out, source);
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
