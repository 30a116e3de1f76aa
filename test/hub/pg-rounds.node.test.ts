// Fallback all-reduce rounds across hubs (pg-rounds.ts) on a real PostgreSQL database, without the
// HTTP around them: two HubRounds, each on its own PostgresStore (two hubs' worth of connections),
// sharing one round. A round with a member that never uploads is settled by the hub whose deadline
// comes first; the other hub's waiter gets the same bits at once (NOTIFY), long before its own
// deadline. A second round whose members all upload on different hubs is averaged by the hub that
// received the last tensor. A mismatched group is refused on the other hub too.
import { afterAll, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../src/core/hash.ts';
import { PostgresStore } from '../../src/hub/postgres-store.ts';
import { averageInOrder, HubRounds } from '../../src/hub/rounds.ts';
import { freshDatabase } from '../node/pg-helpers.ts';

const stores: PostgresStore[] = [];
const rounds: HubRounds[] = [];
afterAll(() => {
  for (const r of rounds) r.close();
  for (const s of stores) s.close();
});

const floats = (n: number, seed: number) =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(seed * 1000 + i));
const bytes = (f: Float32Array) => new Uint8Array(f.buffer, f.byteOffset, f.byteLength);

async function twoHubs(timeoutA: number, timeoutB: number) {
  const url = await freshDatabase('pg_rounds');
  const sa = new PostgresStore(url);
  const sb = new PostgresStore(url);
  stores.push(sa, sb);
  const exchange = (s: PostgresStore) => {
    if (!s.roundExchange) throw new Error('no round exchange');
    return s.roundExchange;
  };
  const a = new HubRounds({ roundTimeoutMs: timeoutA, exchange: exchange(sa) });
  const b = new HubRounds({ roundTimeoutMs: timeoutB, exchange: exchange(sb) });
  rounds.push(a, b);
  return { a, b };
}

describe('fallback rounds shared by two hubs on one PostgreSQL', () => {
  it('the first deadline settles a round for both hubs: one mean, the waiter on the other hub told at once', async () => {
    const { a, b } = await twoHubs(1000, 30_000);
    const group = ['p1', 'p2', 'p3'];
    const x1 = floats(257, 1);
    const x2 = floats(257, 2);
    const t1 = a.join({
      round: 'r/deadline',
      group,
      elements: 257,
      sha256: await sha256Hex(bytes(x1)),
      peer: 'p1',
      volunteer: 'v1',
    });
    const t2 = b.join({
      round: 'r/deadline',
      group,
      elements: 257,
      sha256: await sha256Hex(bytes(x2)),
      peer: 'p2',
      volunteer: 'v2',
    });
    await a.upload('r/deadline', t1.ticket, bytes(x1));
    await b.upload('r/deadline', t2.ticket, bytes(x2));
    const started = Date.now();
    const [ma, mb] = await Promise.all([a.mean('r/deadline', t1.ticket), b.mean('r/deadline', t2.ticket)]);
    // Hub A's deadline (1 s), not hub B's (30 s).
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(ma.contributors).toEqual(['p1', 'p2']);
    expect(mb.contributors).toEqual(['p1', 'p2']);
    expect(mb.contributions).toEqual(ma.contributions);
    expect(Buffer.from(bytes(mb.mean)).equals(Buffer.from(bytes(ma.mean)))).toBe(true);
    expect(
      Buffer.from(bytes(ma.mean)).equals(Buffer.from(bytes(averageInOrder([{ data: x1 }, { data: x2 }])))),
    ).toBe(true);
    expect(mb.sha256).toBe(ma.sha256);
    // Too late now, on either hub.
    expect(() =>
      b.join({
        round: 'r/deadline',
        group,
        elements: 257,
        sha256: 'ab'.repeat(32),
        peer: 'p3',
        volunteer: 'v3',
      }),
    ).toThrow(/already averaged/);
  }, 60_000);

  it('every member uploaded, on different hubs: averaged at once, in group order; a mismatched group refused across hubs', async () => {
    const { a, b } = await twoHubs(30_000, 30_000);
    const group = ['q1', 'q2'];
    const x = [floats(64, 3), floats(64, 4)];
    const ta = a.join({
      round: 'r/all',
      group,
      elements: 64,
      sha256: await sha256Hex(bytes(x[0] as Float32Array)),
      peer: 'q1',
      volunteer: 'w1',
    });
    expect(() =>
      b.join({
        round: 'r/all',
        group: ['q2', 'q1'],
        elements: 64,
        sha256: 'ab'.repeat(32),
        peer: 'q2',
        volunteer: 'w2',
      }),
    ).toThrow(/another group/);
    expect(() =>
      b.join({ round: 'r/all', group, elements: 65, sha256: 'ab'.repeat(32), peer: 'q2', volunteer: 'w2' }),
    ).toThrow(/elements/);
    const tb = b.join({
      round: 'r/all',
      group,
      elements: 64,
      sha256: await sha256Hex(bytes(x[1] as Float32Array)),
      peer: 'q2',
      volunteer: 'w2',
    });
    // Hub B's upload comes first; hub A's, the last, averages.
    await b.upload('r/all', tb.ticket, bytes(x[1] as Float32Array));
    await a.upload('r/all', ta.ticket, bytes(x[0] as Float32Array));
    const started = Date.now();
    const [ma, mb] = await Promise.all([a.mean('r/all', ta.ticket), b.mean('r/all', tb.ticket)]);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(ma.contributors).toEqual(group);
    expect(Buffer.from(bytes(mb.mean)).equals(Buffer.from(bytes(ma.mean)))).toBe(true);
    expect(
      Buffer.from(bytes(ma.mean)).equals(Buffer.from(bytes(averageInOrder(x.map((d) => ({ data: d })))))),
    ).toBe(true);
  }, 60_000);
});
