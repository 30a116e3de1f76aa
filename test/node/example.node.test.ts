// `hearth example` writes jobs a hub accepts: manifests that parse, and every blob they name in a
// file named by its SHA-256.
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeExample } from '../../src/node/example.ts';
import { manifestBlobs, parseManifest } from '../../src/protocol/kinds/index.ts';
import type { WgslDispatchSpec } from '../../src/protocol/manifest.ts';

const dir = mkdtempSync(join(tmpdir(), 'hearth-example-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('hearth example', () => {
  it('writes an ONNX and a WGSL manifest whose blobs sit beside them, named by hash', () => {
    const files = writeExample(dir, { rows: 20 });
    const onnx = parseManifest(JSON.parse(readFileSync(files.onnxManifest, 'utf8')));
    const wgsl = parseManifest(JSON.parse(readFileSync(files.wgslManifest, 'utf8')));
    expect(onnx.kind).toBe('onnx');
    expect(wgsl.kind).toBe('wgsl');
    if (onnx.kind !== 'onnx' || wgsl.kind !== 'wgsl') return;
    expect(onnx.inputs.x?.shape).toEqual([20, 32]);
    const heat = parseManifest(JSON.parse(readFileSync(files.heatManifest, 'utf8')));
    expect(heat.kind).toBe('wgsl');
    const named = new Set([
      onnx.model,
      onnx.inputs.x!.sha256,
      ...wgsl.shards.flatMap((s) =>
        (s as WgslDispatchSpec).bindings.flatMap((b) =>
          b.role === 'input' ? [b.tensor.sha256] : b.role === 'uniform' ? [b.sha256] : [],
        ),
      ),
      ...manifestBlobs(heat),
    ]);
    const onDisk = readdirSync(dir).filter((f) => /^[0-9a-f]{64}$/.test(f));
    expect(new Set(onDisk)).toEqual(named);
    for (const f of onDisk) {
      expect(
        createHash('sha256')
          .update(readFileSync(join(dir, f)))
          .digest('hex'),
      ).toBe(f);
    }
    expect(files.blobs).toBe(named.size);
  });
});
