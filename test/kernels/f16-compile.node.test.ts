// SwiftShader has no shader-f16, so the f16 kernel tests skip here. This test still makes sure
// every f16 variant is valid WGSL: Dawn's Null backend offers shader-f16 and runs Tint's full
// front end, though it executes nothing: it checks compilation only; numerics need a device
// with shader-f16 (see the skipped "f16" cases).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { create, globals } from 'webgpu';
import { compileWgsl } from '../../src/gpu/compile.ts';

const dir = join(import.meta.dirname, '../../shaders');
const shaders = readdirSync(dir)
  .filter((f) => f.endsWith('.wgsl'))
  .map((f) => ({ file: f, code: readFileSync(join(dir, f), 'utf8') }))
  .filter((s) => s.code.includes('alias T = f32;'));

let device: GPUDevice;
beforeAll(async () => {
  Object.assign(globalThis, globals);
  const adapter = await (create(['backend=null']) as GPU).requestAdapter();
  if (!adapter?.features.has('shader-f16')) throw new Error('Dawn Null backend without shader-f16');
  device = await adapter.requestDevice({ requiredFeatures: ['shader-f16'] });
});
afterAll(() => device?.destroy());

describe('f16 kernel variants compile (Dawn Null backend, validation only)', () => {
  it('finds the templated shaders', () => {
    expect(shaders.length).toBeGreaterThanOrEqual(10);
  });
  for (const s of shaders) {
    it(s.file, async () => {
      const code = s.code.replace('alias T = f32;', 'enable f16;\nalias T = f16;');
      // Tint's front end resolves every type and call, so f16/f32 mixing fails here. Pipelines
      // are not built: the Null backend's pipeline path aborts the process now and then
      // (std::system_error in Dawn), and it would validate little more.
      const module = await compileWgsl(device, { label: `${s.file}<f16>`, code });
      expect(module.label).toBe(`${s.file}<f16>`);
    });
  }
});
