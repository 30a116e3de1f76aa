// ResultOutbox on Chromium's real IndexedDB.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { sha256Hex } from '../../src/core/hash.ts';
import type { ShardResult } from '../../src/protocol/shard.ts';
import { type HearthDB, openHearthDB, ResultOutbox } from '../../src/store/index.ts';
import { bytesOf, freshDb } from './helpers.ts';

let db: HearthDB;
let name: string;
let dispose: () => Promise<void>;

beforeEach(async () => {
  ({ db, name, dispose } = await freshDb());
});
afterEach(async () => {
  await dispose();
});

async function result(shard: string, seed: number): Promise<ShardResult> {
  const data = bytesOf(64, seed).buffer;
  return {
    v: 1,
    shard,
    job: 'job1',
    kind: 'wgsl',
    outputs: [{ name: 'y', dtype: 'f32', shape: [4, 4], data, sha256: await sha256Hex(data) }],
    backend: 'webgpu',
    device: 'google swiftshader (fallback)',
    ms: seed,
  };
}

describe('ResultOutbox', () => {
  it('lists results in insertion order until each is acknowledged', async () => {
    const outbox = new ResultOutbox(db);
    // Ids chosen so that key order and insertion order differ.
    for (const [i, id] of ['job1/9', 'job1/1', 'job1/5'].entries()) {
      expect(await outbox.add(await result(id, i + 1))).toBe(true);
    }
    expect((await outbox.pending()).map((r) => r.shard)).toEqual(['job1/9', 'job1/1', 'job1/5']);
    expect(await outbox.size()).toBe(3);

    expect(await outbox.ack('job1/1')).toBe(true);
    expect((await outbox.pending()).map((r) => r.shard)).toEqual(['job1/9', 'job1/5']);
    expect(await outbox.has('job1/1')).toBe(false);
    expect(await outbox.has('job1/9')).toBe(true);

    // A later add goes to the back, even for a shard that was acknowledged before.
    await outbox.add(await result('job1/1', 7));
    expect((await outbox.pending()).map((r) => r.shard)).toEqual(['job1/9', 'job1/5', 'job1/1']);
  });

  it('keeps one entry per shard id: the first add wins', async () => {
    const outbox = new ResultOutbox(db);
    expect(await outbox.add(await result('job1/0', 1))).toBe(true);
    expect(await outbox.add(await result('job1/0', 2))).toBe(false);
    const pending = await outbox.pending();
    expect(pending).toHaveLength(1);
    expect(pending[0]!.ms).toBe(1);
  });

  it('acknowledging an unknown or already acknowledged shard is harmless', async () => {
    const outbox = new ResultOutbox(db);
    await outbox.add(await result('job1/0', 1));
    expect(await outbox.ack('job1/404')).toBe(false);
    expect(await outbox.ack('job1/0')).toBe(true);
    expect(await outbox.ack('job1/0')).toBe(false);
    expect(await outbox.pending()).toEqual([]);
  });

  it('stores output tensors as ArrayBuffers, bytes intact', async () => {
    const outbox = new ResultOutbox(db);
    const r = await result('job1/3', 3);
    await outbox.add(r);
    const [back] = await outbox.pending();
    const out = back!.outputs[0]!;
    expect(out.data).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(out.data)).toEqual(new Uint8Array(r.outputs[0]!.data));
    expect(await sha256Hex(out.data)).toBe(out.sha256);
    expect(back).toEqual(r);
    // The raw record holds the buffer itself, not a JSON or base64 rendering of it.
    const [raw] = await db.getAll('outbox');
    expect(raw!.result.outputs[0]!.data).toBeInstanceOf(ArrayBuffer);
  });

  it('keeps pending results across connections (a new page or worker)', async () => {
    await new ResultOutbox(db).add(await result('job1/2', 2));
    db.close();
    db = await openHearthDB(name);
    expect((await new ResultOutbox(db).pending()).map((r) => r.shard)).toEqual(['job1/2']);
  });

  it('refuses a result without a shard id', async () => {
    const outbox = new ResultOutbox(db);
    const bad = { ...(await result('x', 1)), shard: '' };
    await expect(outbox.add(bad)).rejects.toSatisfy((e) => isHearthError(e, 'input/invalid'));
    await expect(outbox.ack('')).rejects.toSatisfy((e) => isHearthError(e, 'input/invalid'));
    expect(await outbox.size()).toBe(0);
  });
});
