// The hub's own faults are seen by its operator (issue 11): a 500 answers the client with a bare
// "the hub failed" and writes one structured line (method, path, error, stack) and a count; a
// failing expiry sweep is counted every time and logged once per distinct failure. Never a token.
import { afterEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/hub/tokens.ts';
import type { HubLogEntry } from '../../src/node/hub-server.ts';
import { waitFor } from '../client/client-helpers.ts';
import { manifestJson, type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

describe('hub error log', () => {
  it('logs and counts a 500 without telling the client more than that the hub failed', async () => {
    const lines: HubLogEntry[] = [];
    t = await testHub({ log: (e) => lines.push(e) });
    const { token } = createToken(t.hub.store, 'alice');
    // No real part fails on demand with a bug: stand one in for the scheduler's progress.
    (t.hub.scheduler as unknown as { progress: () => never }).progress = () => {
      throw new TypeError('a bug in progress()');
    };
    const { job } = (await (
      await fetch(`${t.hub.url}/v1/jobs`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify(await minimalJob(t, token)),
      })
    ).json()) as { job: string };
    const bad = await fetch(`${t.hub.url}/v1/jobs/${job}`, { headers: { authorization: `Bearer ${token}` } });
    expect(bad.status).toBe(500);
    const body = (await bad.json()) as { error: { code: string; message: string } };
    expect(body.error).toEqual({
      code: 'http/internal',
      message: 'the hub failed on this request; it keeps serving others.',
    });
    expect(t.hub.stats.internalErrors).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'error',
      at: 'http',
      method: 'GET',
      path: `/v1/jobs/${job}`,
      error: 'TypeError: a bug in progress()',
    });
    expect(JSON.stringify(lines)).not.toContain(token);
  });

  it('counts every failed expiry sweep and logs each distinct failure once', async () => {
    const lines: HubLogEntry[] = [];
    t = await testHub({ log: (e) => lines.push(e), expireEveryMs: 20 });
    // The store closed under the hub: every sweep now fails the same way.
    t.hub.store.close();
    await waitFor(async () => t!.hub.stats.sweepFailures >= 3, 5_000, 'three failed sweeps');
    expect(lines.filter((l) => l.at === 'expiry')).toHaveLength(1);
    expect(lines[0]?.error).toMatch(/store\/failed|closed/);
  });
});

/** A one-shard WGSL job the hub accepts (its uniform uploaded). */
async function minimalJob(hub: TestHub, token: string) {
  const { manifest, blobs } = manifestJson(1);
  await upload(hub.hub.url, token, blobs);
  return manifest;
}
