// Live job progress over server-sent events (GET /v1/jobs/:id/events) on a real hub with a real
// volunteer on Dawn: the first event at once, one after changes, the last when the job is done,
// then the stream ends; a stranger gets 401, another researcher 403.
import { afterEach, describe, expect, it } from 'vitest';
import { createToken } from '../../src/hub/tokens.ts';
import { EMBED_ORIGIN, indexJob, type NodeVolunteer, nodeVolunteer } from '../client/client-helpers.ts';
import { type TestHub, testHub, upload } from './hub-helpers.ts';

let t: TestHub | undefined;
const vols: NodeVolunteer[] = [];
afterEach(async () => {
  for (const v of vols.splice(0)) await v.dispose();
  await t?.dispose();
  t = undefined;
});

interface Progress {
  readonly status: string;
  readonly validated: number;
  readonly shards: number;
}

/** Reads an event stream to its end: every `progress` event's data, in order. */
async function readEvents(body: ReadableStream<Uint8Array>, onEvent: (p: Progress) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buf = '';
  for await (const chunk of body) {
    buf += decoder.decode(chunk, { stream: true });
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(':')) continue; // keep-alive comment
      const lines = block.split('\n');
      expect(lines[0]).toBe('event: progress');
      onEvent(JSON.parse((lines[1] ?? '').replace(/^data: /, '')) as Progress);
    }
  }
}

describe('live job progress (server-sent events)', () => {
  it('streams progress as volunteers work, ends with the done job, and is the owner’s only', async () => {
    t = await testHub({ allowedOrigins: [EMBED_ORIGIN], expireEveryMs: 100 });
    const { token } = createToken(t.hub.store, 'alice');
    const other = createToken(t.hub.store, 'bob').token;
    const { manifest, blobs } = await indexJob(3, { replication: 1 });
    await upload(t.hub.url, token, blobs);
    const auth = { authorization: `Bearer ${token}` };
    const r = await fetch(`${t.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify(manifest),
    });
    const { job } = (await r.json()) as { job: string };
    const url = `${t.hub.url}/v1/jobs/${job}/events`;
    expect((await fetch(url)).status).toBe(401);
    expect((await fetch(url, { headers: { authorization: `Bearer ${other}` } })).status).toBe(403);

    const res = await fetch(url, { headers: auth });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events: Progress[] = [];
    const done = readEvents(res.body!, (p) => events.push(p));
    // The first event comes before any work.
    while (events.length === 0) await new Promise((r) => setTimeout(r, 10));
    expect(events[0]).toMatchObject({ status: 'running', validated: 0, shards: 3 });
    vols.push(await nodeVolunteer(t.hub.url));
    vols[0]!.volunteer.start();
    await done; // the hub ends the stream itself once the job is done
    const last = events[events.length - 1]!;
    expect(last).toMatchObject({ status: 'done', validated: 3, shards: 3 });
    // Events in between, never going backwards.
    expect(events.length).toBeGreaterThan(2);
    for (let i = 1; i < events.length; i++) {
      expect(events[i]!.validated).toBeGreaterThanOrEqual(events[i - 1]!.validated);
    }
    expect(t.hub.stats.internalErrors).toBe(0);
  }, 60_000);
});
