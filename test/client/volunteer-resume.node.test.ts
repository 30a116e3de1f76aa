// The volunteer runtime's side of a reload: a `train` lease is noted before it runs; a volunteer
// that stops mid-shard (as a closed tab does) keeps the note; the next volunteer on the same
// device and identity runs it again from its checkpoint before asking for work, and its late
// result is taken and agrees with the other replica. A real hub, real Dawn engines.
//
// The note and checkpoint stores are Maps behind the runtime's seams (UnfinishedStore,
// ShardCheckpoints): Node has no IndexedDB. The IndexedDB ones run in Chromium
// (test/store/unfinished.browser.test.ts, and the reload test in volunteer-e2e).
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../src/client/blobs.ts';
import { leaseOfNote, noteOf, resumable, type UnfinishedStore } from '../../src/client/unfinished.ts';
import { MemoryResultQueue, Volunteer, type VolunteerEvent } from '../../src/client/volunteer.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { dawnGpu } from '../../src/node/dawn.ts';
import type { LeaseMessage } from '../../src/protocol/control.ts';
import type { Checkpoint, CheckpointState } from '../../src/store/db.ts';
import { ComputeEngine, type ShardCheckpoints } from '../../src/worker/engine.ts';
import { TestKey } from '../node/control-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';
import { smallCorpus, tinyTrainJob, trainView } from '../train/job-helpers.ts';
import { EMBED_ORIGIN, type NodeVolunteer, nodeSocket, nodeVolunteer, waitFor } from './client-helpers.ts';

/** One device's durable parts: what survives a reload of its tab. */
class Device implements UnfinishedStore, ShardCheckpoints {
  readonly notes = new Map<string, { shard: string; lease: unknown; hub: string }>();
  readonly cps = new Map<string, Checkpoint>();
  readonly outbox = new MemoryResultQueue();
  readonly blobs = new MemoryBlobStore();
  async remember(shard: string, lease: unknown, hub: string) {
    this.notes.set(shard, { shard, lease, hub });
  }
  async list() {
    return [...this.notes.values()];
  }
  async forget(shard: string) {
    this.notes.delete(shard);
    this.cps.delete(shard);
  }
  async load(shard: string) {
    return this.cps.get(shard) ?? null;
  }
  async save(shard: string, step: number, state: CheckpointState) {
    this.cps.set(shard, { shard, step, state, savedAt: Date.now() });
  }
  async clear(shard: string) {
    this.cps.delete(shard);
  }
}

/** A "tab" on `device`: a fresh engine and Volunteer, the device's stores. */
async function tab(hubUrl: string, key: TestKey, device: Device, events: VolunteerEvent[]) {
  const engine = new ComputeEngine({
    runtime: new GpuRuntime({ gpu: dawnGpu() }),
    blobs: device.blobs,
    checkpoints: device,
    checkpointEveryMs: 0,
  });
  const caps = await engine.probe();
  const volunteer = new Volunteer({
    hubUrl,
    identity: { id: key.id, publicKey: key.publicKey, sign: (n) => key.sign(n) },
    capabilities: { maxBufferBytes: caps.limits.maxBufferSize, features: [] },
    runner: { runShard: (s, p) => engine.runShard(s, p), cancel: (id) => engine.cancel(id) },
    outbox: device.outbox,
    blobs: device.blobs,
    unfinished: device,
    socket: nodeSocket(),
    idleMs: 50,
    backoff: { minMs: 50, maxMs: 500 },
    onEvent: (e) => events.push(e),
  });
  return {
    volunteer,
    async close() {
      await volunteer.stop();
      await engine.dispose();
    },
  };
}

let t: TestHub | undefined;
const closers: (() => Promise<void>)[] = [];
const others: NodeVolunteer[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) await c();
  for (const v of others.splice(0)) await v.dispose();
  await t?.dispose();
  t = undefined;
});

describe('volunteer: training leases across a reload', () => {
  it('a volunteer stopped mid-shard resumes it from its checkpoint when it starts again; the late Δ agrees with its replica', async () => {
    t = await testHub({ allowedOrigins: [EMBED_ORIGIN], maxBlobBytes: 1 << 22, expireEveryMs: 100 });
    const { token } = createToken(t.hub.store, 'alice');
    const auth = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const corpus = smallCorpus();
    await upload(t.hub.url, token, [corpus]);
    const manifest = await tinyTrainJob(corpus, { rounds: 1, groupSize: 1, innerSteps: 8 });
    const r = await fetch(`${t.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: auth,
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(201);
    const { job } = (await r.json()) as { job: string };

    const key = await TestKey.create();
    const device = new Device();
    const before: VolunteerEvent[] = [];
    const first = await tab(t.hub.url, key, device, before);
    closers.push(() => first.close());
    first.volunteer.start();
    await waitFor(
      () =>
        before.some(
          (e) => e.type === 'progress' && e.progress.phase === 'checkpoint' && e.progress.done >= 3,
        ),
      120_000,
      'three inner steps checkpointed',
    );
    const [noted] = device.notes.keys();
    expect(noted).toBeDefined();
    // The tab goes away mid-shard: the note and its checkpoint stay on the device.
    await first.close();
    closers.pop();
    expect([...device.notes.keys()]).toEqual([noted]);
    const savedAt = device.cps.get(noted as string)?.step ?? 0;
    expect(savedAt).toBeGreaterThanOrEqual(3);

    // The other replica's volunteer, and the "reloaded tab" with the same key and device.
    others.push(await nodeVolunteer(t.hub.url));
    others[0]?.volunteer.start();
    const after: VolunteerEvent[] = [];
    const second = await tab(t.hub.url, key, device, after);
    closers.push(() => second.close());
    second.volunteer.start();
    await waitFor(
      async () => (await trainView(t!.hub.url, auth, job)).status !== 'running',
      180_000,
      'the train job to end',
    );
    const resumedLease = after.find((e) => e.type === 'lease' && e.shard === noted);
    expect(resumedLease).toMatchObject({ resumed: true });
    const resume = after.find((e) => e.type === 'progress' && e.progress.phase === 'resume');
    expect(resume).toMatchObject({ progress: { shard: noted, done: savedAt, total: 8 } });
    expect(second.volunteer.stats).toMatchObject({
      resumed: 1,
      resumedSteps: savedAt,
      refused: 0,
      failed: 0,
    });
    // Its late result was taken and is one of the two agreeing replicas.
    const view = await trainView(t.hub.url, auth, job);
    expect(view.status).toBe('done');
    expect(view.curve[0]?.accepted).toBe(1);
    const granted = t.hub.store.ledger().filter((e) => e.shard === noted && e.status === 'granted');
    expect(granted.map((e) => e.volunteer).sort()).toEqual([key.id, others[0]?.key.id].sort());
    // Nothing is left on the device.
    expect(device.notes.size).toBe(0);
    expect(device.cps.size).toBe(0);
  }, 300_000);
});

describe('unfinished-lease notes', () => {
  const lease = {
    v: 2,
    type: 'lease',
    re: 1,
    lease: 'l1',
    shard: 's1',
    job: 'j1',
    deadline: 1,
    work: { kind: 'train', steps: 6 },
  } as unknown as LeaseMessage;

  it('notes training leases with inner steps only', () => {
    expect(resumable(lease)).toBe(true);
    expect(resumable({ ...lease, work: { kind: 'train', steps: 0 } } as unknown as LeaseMessage)).toBe(false);
    expect(resumable({ ...lease, work: { kind: 'wgsl' } } as unknown as LeaseMessage)).toBe(false);
  });

  it('reads back a lease it wrote, and refuses anything else with a typed error', () => {
    expect(() => leaseOfNote('{"v":2,"type":"no-work","re":1}')).toThrow(
      expect.objectContaining({ code: 'input/invalid' }),
    );
    for (const bad of ['not json', 42, null, '{"v":2}']) {
      expect(() => leaseOfNote(bad)).toThrow(expect.objectContaining({ code: 'input/invalid' }));
    }
    expect(noteOf(lease)).toBe(JSON.stringify(lease));
  });
});
