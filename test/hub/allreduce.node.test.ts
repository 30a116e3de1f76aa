// The hub's side of accountable all-reduce without a network: all-reduce reports across a reopen
// of the SQLite file (every store's handling of them is in store-contract.ts, the migration that
// adds their table in sqlite-store.node.test.ts), the audit's verdicts when reports disagree, and the fallback rounds' averaging (f32 in
// group order), bounds and TTL.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isHearthError } from '../../src/core/errors.ts';
import { auditRound, wrongContributions } from '../../src/hub/allreduce-audit.ts';
import { JournaledStore } from '../../src/hub/journaled-store.ts';
import { HubRounds } from '../../src/hub/rounds.ts';
import { SqliteStore } from '../../src/hub/sqlite-store.ts';
import type { AllReduceReportRecord, HubStore } from '../../src/hub/store.ts';
import { sha, testHub } from '../node/hub-helpers.ts';

const dirs: string[] = [];
const open: HubStore[] = [];
afterEach(() => {
  for (const s of open.splice(0)) s.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDb(): string {
  const d = mkdtempSync(join(tmpdir(), 'hearth-allreduce-'));
  dirs.push(d);
  return join(d, 'hub.db');
}
const keep = <S extends HubStore>(s: S): S => {
  open.push(s);
  return s;
};

const peer = (i: number) => `h${i.toString(16).padStart(32, '0')}`;
function report(round: string, reporter: number, at: number, over: Partial<AllReduceReportRecord> = {}) {
  return {
    round,
    reporter: 'v'.repeat(63) + reporter,
    reporterPeer: peer(reporter),
    receivedAt: at,
    group: [peer(1), peer(2)],
    contributors: [peer(1), peer(2)],
    contributions: [1, 2].map((i) => ({
      peer: peer(i),
      volunteer: `${i}`.repeat(64),
      sha256: `${i}`.repeat(64),
      signature: 'S'.repeat(86),
      verdict: 'valid',
    })),
    mean: 'm'.repeat(64),
    dropped: [],
    ...over,
  } satisfies AllReduceReportRecord;
}

describe('the hub sweeps old all-reduce reports', () => {
  it('forgets reports past allreduceReportTtlMs and keeps fresh ones', async () => {
    const th = await testHub({ allreduceReportTtlMs: 60_000, expireEveryMs: 20 });
    try {
      const now = Date.now();
      th.hub.store.putAllReduceReport(report('old', 1, now - 120_000));
      th.hub.store.putAllReduceReport(report('fresh', 1, now));
      // The sweep runs on the hub's expiry tick; wait (bounded) for the old one to go.
      const until = Date.now() + 10_000;
      while (th.hub.store.allReduceReports('old').length > 0 && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(th.hub.store.allReduceReports('old')).toEqual([]);
      expect(th.hub.store.allReduceReports('fresh')).toHaveLength(1);
    } finally {
      await th.dispose();
    }
  });
});

describe('all-reduce reports on the SQLite file', () => {
  it('survive a reopen, through the journaled store too', () => {
    const path = tempDb();
    const a = new JournaledStore(path);
    a.putAllReduceReport(report('r', 1, 1));
    a.close();
    const b = keep(new SqliteStore(path));
    expect(b.allReduceReports('r')).toEqual([report('r', 1, 1)]);
  });
});

describe('auditRound and wrongContributions', () => {
  it('names the volunteer behind a hash that differs from the expected one', () => {
    const audit = auditRound('r', [report('r', 1, 1), report('r', 2, 2)]);
    expect(audit.contributions.map((c) => [c.peer, c.consistent, c.valid, c.variants[0]!.reporters])).toEqual(
      [
        [peer(1), true, true, [peer(1), peer(2)]],
        [peer(2), true, true, [peer(1), peer(2)]],
      ],
    );
    const expected = new Map([
      [peer(1), '1'.repeat(64)],
      [peer(2), 'f'.repeat(64)],
    ]);
    expect(wrongContributions(audit, expected)).toEqual([
      {
        peer: peer(2),
        volunteer: '2'.repeat(64),
        reported: '2'.repeat(64),
        expected: 'f'.repeat(64),
        signed: true,
      },
    ]);
    expect(wrongContributions(audit, new Map())).toEqual([]);
  });

  it('marks a contribution reported two ways as inconsistent, and refuses to judge it', () => {
    const liar = report('r', 2, 2);
    const audit = auditRound('r', [
      report('r', 1, 1),
      {
        ...liar,
        contributions: [{ ...liar.contributions[0]!, sha256: 'e'.repeat(64) }, liar.contributions[1]!],
      },
    ]);
    const c = audit.contributions[0]!;
    expect([c.consistent, c.valid, c.variants.length]).toEqual([false, false, 2]);
    expect(() => wrongContributions(audit, new Map([[peer(1), '1'.repeat(64)]]))).toThrow(/2 different/);
  });
});

describe('HubRounds: averaging through the hub', () => {
  const f32 = (xs: number[]) => Float32Array.from(xs);
  const bytes = (f: Float32Array) => new Uint8Array(f.buffer);
  const join = (r: HubRounds, round: string, group: string[], p: string, x: Float32Array) =>
    r.join({ round, group, elements: x.length, sha256: sha(bytes(x)), peer: p, volunteer: `v-${p}` });

  it('sums in f32 in group order, then divides, whatever the upload order; frees the tensors', async () => {
    const rounds = new HubRounds();
    const group = ['a', 'b', 'c'];
    // Chosen so the f32 order matters: 1e8 + 1 − 1e8 is 0 in f32, not 1.
    const xs = [f32([1e8, 0.1]), f32([1, 0.2]), f32([-1e8, 0.3])];
    const tickets = group.map((p, i) => join(rounds, 'r', group, p, xs[i]!).ticket);
    for (const i of [2, 0, 1]) await rounds.upload('r', tickets[i]!, bytes(xs[i]!));
    const m = await rounds.mean('r', tickets[1]!);
    const want = new Float32Array(2);
    for (let k = 0; k < 2; k++) {
      let s = Math.fround(xs[0]![k]!);
      s = Math.fround(s + xs[1]![k]!);
      s = Math.fround(s + xs[2]![k]!);
      want[k] = Math.fround(s / 3);
    }
    expect(Buffer.from(bytes(m.mean)).equals(Buffer.from(bytes(want)))).toBe(true);
    expect(m.mean[0]).toBe(0);
    expect(m.contributors).toEqual(group);
    expect(m.contributions.map((c) => c.volunteer)).toEqual(['v-a', 'v-b', 'v-c']);
    expect(m.sha256).toBe(sha(bytes(m.mean)));
    expect(rounds.heldBytes).toBe(0);
    rounds.close();
  });

  it('refuses what is out of bounds or does not match, with a status', async () => {
    const rounds = new HubRounds({ maxRounds: 1, maxTensorBytes: 16, maxTotalBytes: 8 });
    const x = f32([1, 2]);
    const status = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        expect(isHearthError(e)).toBe(true);
        return (e as { details: { status: number } }).details.status;
      }
      return 0;
    };
    expect(status(() => join(rounds, 'r', ['a', 'b'], 'c', x))).toBe(403); // not a member
    expect(status(() => join(rounds, 'r', ['a', 'b'], 'a', f32([1, 2, 3, 4, 5])))).toBe(413);
    const t = join(rounds, 'r', ['a', 'b'], 'a', x).ticket;
    expect(join(rounds, 'r', ['a', 'b'], 'a', x).ticket).toBe(t); // asking again: the same ticket
    expect(status(() => join(rounds, 'r2', ['a', 'b'], 'a', x))).toBe(503); // one round at most
    expect(status(() => join(rounds, 'r', ['b', 'a'], 'b', x))).toBe(409); // another order
    const tb = join(rounds, 'r', ['a', 'b'], 'b', x).ticket;
    await expect(rounds.upload('r', t, bytes(f32([2, 1])))).rejects.toMatchObject({
      details: { status: 400 },
    });
    await expect(rounds.upload('r', '0'.repeat(64), bytes(x))).rejects.toMatchObject({
      details: { status: 404 },
    });
    await rounds.upload('r', t, bytes(x));
    await expect(rounds.upload('r', t, bytes(x))).rejects.toMatchObject({ details: { status: 409 } });
    // 8 bytes held in all: b's upload waits for room, refused.
    await expect(rounds.upload('r', tb, bytes(x))).rejects.toMatchObject({ details: { status: 503 } });
    rounds.close();
    // Closed: the round and its tickets are gone.
    expect(status(() => rounds.mean('r', t))).toBe(404);
    // One volunteer cannot hold every round slot: its open rounds are capped.
    const few = new HubRounds({ maxRoundsPerVolunteer: 1 });
    few.join({
      round: 'r1',
      group: ['a', 'b'],
      elements: 2,
      sha256: sha(bytes(x)),
      peer: 'a',
      volunteer: 'v',
    });
    expect(
      status(() =>
        few.join({
          round: 'r2',
          group: ['a', 'b'],
          elements: 2,
          sha256: sha(bytes(x)),
          peer: 'a',
          volunteer: 'v',
        }),
      ),
    ).toBe(429);
    few.join({
      round: 'r2',
      group: ['a', 'b'],
      elements: 2,
      sha256: sha(bytes(x)),
      peer: 'b',
      volunteer: 'w',
    });
    few.close();
  });

  it('averages what arrived by the deadline, then forgets the round after its TTL', async () => {
    const rounds = new HubRounds({ roundTimeoutMs: 50, resultTtlMs: 50 });
    const x = f32([4, 8]);
    const t = join(rounds, 'r', ['a', 'b'], 'a', x).ticket;
    join(rounds, 'r', ['a', 'b'], 'b', x);
    await rounds.upload('r', t, bytes(x));
    const m = await rounds.mean('r', t);
    expect([...m.mean]).toEqual([4, 8]);
    expect(m.contributors).toEqual(['a']);
    for (let i = 0; i < 200 && rounds.size > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(rounds.size).toBe(0);
    expect(rounds.heldBytes).toBe(0);
    rounds.close();
  });
});
