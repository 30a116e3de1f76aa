import { describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { Recorder } from '../../src/gpu/recorder.ts';
import { readTensor, uploadTensor } from '../../src/gpu/tensor.ts';
import { matmul } from '../../src/kernels/matmul.ts';
import { dawnGpu } from '../../src/node/dawn.ts';

async function square(rt: GpuRuntime): Promise<Float32Array> {
  const ctx = await rt.context();
  const a = uploadTensor(ctx, new Float32Array([1, 2, 3, 4]), [2, 2], 'a');
  const rec = new Recorder(ctx, 'square');
  const c = await matmul(rec, a, a);
  await rec.submit();
  const out = (await readTensor(c)) as Float32Array;
  a.release();
  c.release();
  return out;
}

describe('device loss (Dawn)', () => {
  it('surfaces a lost device as a typed error, and the runtime makes a new device', async () => {
    const uncaptured: string[] = [];
    const rt = new GpuRuntime({ gpu: dawnGpu(), onUncapturedError: (e) => uncaptured.push(e.message) });
    expect([...(await square(rt))]).toEqual([7, 10, 15, 22]);
    const first = await rt.context();
    const held = uploadTensor(first, new Float32Array(4), [4], 'held');

    first.device.destroy(); // what a driver reset or a GPU process crash looks like to the page
    const lost = await first.lost;
    expect(lost).toBeInstanceOf(HearthError);
    expect(lost.code).toBe('gpu/device-lost');
    expect(lost.message).toMatch(/lost \(destroyed\)/);
    expect(first.isLost).toBe(true);
    expect(() => first.assertAlive()).toThrow(/device was lost/);
    await expect(readTensor(held)).rejects.toMatchObject({ code: 'gpu/device-lost' });
    expect(() => new Recorder(first)).toThrow(HearthError);
    held.release(); // releasing into a dead pool must not throw

    const second = await rt.context();
    expect(second).not.toBe(first);
    expect(second.isLost).toBe(false);
    expect([...(await square(rt))]).toEqual([7, 10, 15, 22]);
    expect(await rt.context()).toBe(second);
    expect(uncaptured).toEqual([]);
    await rt.dispose();
  });
});
