// `hearth example --out DIR`: writes two example jobs (ONNX and WGSL) to try a hub with.
import { resolve } from 'node:path';
import { type Command, int, str, UsageError } from './cli-args.ts';
import { writeExample } from './example.ts';

export const exampleCommand: Command = {
  name: 'example',
  summary: 'write an example ONNX job and WGSL job (manifests + blobs) into a folder',
  help: `usage: hearth example --out DIR [--rows N]

Writes DIR/onnx-job.json (a small MLP, generated with seeded weights, over a batch of N rows in
shards of 8), DIR/wgsl-job.json (y = 2.5·x − 1 over four slices) and the blobs both name, each
in a file named by its SHA-256 — ready for \`hearth submit DIR/onnx-job.json\`.

  --out DIR    the folder (created when absent)
  --rows N     rows in the ONNX job's batch (default 64, 1 to 65536)`,
  options: { out: { type: 'string' }, rows: { type: 'string' } },
  positionals: 0,
  async run(flags) {
    const out = str(flags, 'out');
    if (!out) throw new UsageError('--out DIR is required.');
    const rows = int(flags, 'rows', 64, 1, 65_536);
    const files = writeExample(resolve(out), { rows });
    process.stdout.write(
      `${files.onnxManifest}\n${files.wgslManifest}\n(${files.blobs} blobs beside them)\n`,
    );
    return 0;
  },
};
