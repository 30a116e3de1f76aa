// `hearth example --out DIR`: writes two example jobs (ONNX and WGSL) to try a hub with.
import { resolve } from 'node:path';
import { type Command, int, str, usage } from './cli-args.ts';
import { writeExample } from './example.ts';

export const exampleCommand: Command = {
  name: 'example',
  summary: 'write example ONNX, WGSL and WGSL-program jobs (manifests + blobs) into a folder',
  help: `usage: hearth example --out DIR [--rows N] [--steps S] [--grid G] [--bands B]

Writes DIR/onnx-job.json (a small MLP, generated with seeded weights, over a batch of N rows in
shards of 8), DIR/wgsl-job.json (y = 2.5·x − 1 over four slices), DIR/heat-job.json (heat
diffusion: S explicit steps on a G×G grid in B bands, each shard a WGSL program of S+1 passes
over its band and S halo rows on each side) and the blobs they name, each in a file named by its
SHA-256 — ready for \`hearth submit DIR/heat-job.json\`.

  --out DIR    the folder (created when absent)
  --rows N     rows in the ONNX job's batch (default 64, 1 to 65536)
  --steps S    heat steps (default 500, 1 to 100000)
  --grid G     heat grid size (default 256, 8 to 2048)
  --bands B    heat bands, one shard each (default 4, 1 to 64)`,
  options: {
    out: { type: 'string' },
    rows: { type: 'string' },
    steps: { type: 'string' },
    grid: { type: 'string' },
    bands: { type: 'string' },
  },
  positionals: 0,
  async run(flags) {
    const out = str(flags, 'out');
    if (!out) throw usage('--out DIR is required.');
    const rows = int(flags, 'rows', 64, 1, 65_536);
    const heat = {
      steps: int(flags, 'steps', 500, 1, 100_000),
      size: int(flags, 'grid', 256, 8, 2048),
      bands: int(flags, 'bands', 4, 1, 64),
    };
    const files = writeExample(resolve(out), { rows, heat });
    process.stdout.write(
      `${files.onnxManifest}\n${files.wgslManifest}\n${files.heatManifest}\n(${files.blobs} blobs beside them)\n`,
    );
    return 0;
  },
};
