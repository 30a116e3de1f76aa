// CheckpointStore on Chromium's real IndexedDB.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { type CheckpointState, CheckpointStore, type HearthDB } from '../../src/store/index.ts';
import { bytesOf, freshDb } from './helpers.ts';

let db: HearthDB;
let dispose: () => Promise<void>;

beforeEach(async () => {
  ({ db, dispose } = await freshDb());
});
afterEach(async () => {
  await dispose();
});

describe('CheckpointStore', () => {
  it('keeps only the latest checkpoint per shard', async () => {
    const cps = new CheckpointStore(db);
    expect(await cps.load('job2/0')).toBeNull();
    await cps.save('job2/0', 10, { params: bytesOf(32, 1).buffer, loss: 3.5, note: 'a' });
    await cps.save('job2/1', 5, { params: bytesOf(32, 9).buffer });
    await cps.save('job2/0', 20, { params: bytesOf(32, 2).buffer, loss: 2.25 });

    const cp = await cps.load('job2/0');
    expect(cp?.shard).toBe('job2/0');
    expect(cp?.step).toBe(20);
    expect(Object.keys(cp!.state).sort()).toEqual(['loss', 'params']);
    expect(cp?.state.loss).toBe(2.25);
    expect(cp?.state.params).toBeInstanceOf(ArrayBuffer);
    expect(new Uint8Array(cp!.state.params as ArrayBuffer)).toEqual(bytesOf(32, 2));
    expect(typeof cp?.savedAt).toBe('number');
    expect(await db.count('checkpoints')).toBe(2);
    expect((await cps.load('job2/1'))?.step).toBe(5);
  });

  it('clears one shard without touching others', async () => {
    const cps = new CheckpointStore(db);
    await cps.save('a', 1, { x: 1 });
    await cps.save('b', 1, { x: 2 });
    await cps.clear('a');
    await cps.clear('never-saved');
    expect(await cps.load('a')).toBeNull();
    expect((await cps.load('b'))?.state).toEqual({ x: 2 });
  });

  it('refuses bad steps and state values with input/invalid, naming the field', async () => {
    const cps = new CheckpointStore(db);
    await expect(cps.save('a', -1, {})).rejects.toSatisfy((e) => isHearthError(e, 'input/invalid'));
    await expect(cps.save('a', 1.5, {})).rejects.toSatisfy((e) => isHearthError(e, 'input/invalid'));
    await expect(cps.save('', 1, {})).rejects.toSatisfy((e) => isHearthError(e, 'input/invalid'));
    const typed = { m: new Float32Array(4) } as unknown as CheckpointState;
    await expect(cps.save('a', 1, typed)).rejects.toThrow(/state\.m .*Float32Array.*ArrayBuffer/);
    const nested = { opt: { lr: 1 } } as unknown as CheckpointState;
    await expect(cps.save('a', 1, nested)).rejects.toThrow(/state\.opt/);
    expect(await cps.load('a')).toBeNull();
  });
});
