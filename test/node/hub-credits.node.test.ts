// A volunteer's credit over the hub's API and `hearth credits`: base units as decimal strings on
// the wire, exact decimals for people. A real hub on loopback with its SQLite file; the credit is
// earned through the hub's own scheduler (the control plane's part is tested elsewhere).
import { afterEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/hub/tokens.ts';
import { CREDIT_UNITS, parseCreditReport } from '../../src/protocol/credit.ts';
import { CAPS, result, truth, wgslManifest } from '../hub/fixtures.ts';
import { hearth } from './cli-helpers.ts';
import { type TestHub, testHub } from './hub-helpers.ts';

const open: TestHub[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.dispose();
});

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

describe('GET /v1/volunteers/:id/credits and hearth credits', () => {
  it('reports granted and pending credit exactly, as decimal strings of base units', async () => {
    const t = await testHub();
    open.push(t);
    const s = t.hub.scheduler;
    const token = createToken(t.hub.store, 'alice').token;
    // 100 FLOPs at 0.7 credits per FLOP: 70 credits a shard (70.00000000000001 in floats).
    const job = s.submit(wgslManifest(2, { creditRate: 0.7 }), Date.now());
    const g0 = s.lease(A, CAPS, Date.now())!;
    s.lease(B, CAPS, Date.now());
    const g1 = s.lease(A, CAPS, Date.now())!;
    await s.submitResult(A, await result(g0.shard, job, truth(0)), Date.now());
    await s.submitResult(B, await result(g0.shard, job, truth(0)), Date.now());
    await s.submitResult(A, await result(g1.shard, job, truth(1)), Date.now());

    const url = (v: string) => `${t.hub.url}/v1/volunteers/${v}/credits`;
    const auth = { authorization: `Bearer ${token}` };
    const r = await fetch(url(A), { headers: auth });
    expect(r.status).toBe(200);
    const text = await r.text();
    expect(JSON.parse(text)).toEqual({
      volunteer: A,
      unitsPerCredit: '1000000',
      granted: '70000000',
      pending: '70000000',
      pendingResults: 1,
    });
    expect(parseCreditReport(JSON.parse(text))).toMatchObject({ granted: 70n * CREDIT_UNITS });

    const env = { HEARTH_HUB: t.hub.url, HEARTH_TOKEN: token };
    let out = await hearth(['credits', A], env);
    expect(out.stderr).toBe('');
    expect(out.code).toBe(0);
    expect(out.stdout).toBe(`${A}: 70 credits granted, 70 pending (1 result awaiting validation)\n`);
    out = await hearth(['credits', B, '--units'], env);
    expect(out.stdout).toBe(`${B} 70000000 0\n`);

    // Unknown volunteers are a 404; the route needs a token.
    expect((await fetch(url('c'.repeat(64)), { headers: auth })).status).toBe(404);
    expect((await fetch(url(A))).status).toBe(401);
    out = await hearth(['credits', 'c'.repeat(64)], env);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/404 http\/not-found: volunteer c+ does not exist/);
  });
});
