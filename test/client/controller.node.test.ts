// The DOM-free volunteer controller (src/client/controller.ts) against a real hub, with a real
// ComputeEngine on Dawn as its "worker": nothing starts before a yes, a remembered yes resumes,
// the snapshot follows the work, and stop forgets the yes and terminates the worker.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBlobStore } from '../../src/client/blobs.ts';
import {
  BATTERY_PAUSE_LEVEL,
  type Comfort,
  type ControllerOptions,
  type ControllerWorker,
  gpuBusy,
  VolunteerController,
  type VolunteerSettings,
  type VolunteerSnapshot,
} from '../../src/client/controller.ts';
import { MemoryResultQueue } from '../../src/client/volunteer.ts';
import { GpuRuntime } from '../../src/gpu/context.ts';
import { createToken } from '../../src/hub/tokens.ts';
import { dawnGpu } from '../../src/node/dawn.ts';
import { runOnnx } from '../../src/onnx/run.ts';
import { ComputeEngine } from '../../src/worker/engine.ts';
import { TestKey } from '../node/control-helpers.ts';
import { type TestHub, testHub, upload } from '../node/hub-helpers.ts';
import { EMBED_ORIGIN, indexJob, nodeSocket, waitFor } from './client-helpers.ts';

let t: TestHub | undefined;
const controllers: VolunteerController[] = [];
afterEach(async () => {
  for (const c of controllers.splice(0)) await c.stop();
  await t?.dispose();
  t = undefined;
});

/** A controller whose worker is a ComputeEngine; counts how often the platform parts were made. */
function controller(
  hubUrl: string,
  remembered: boolean,
  more: Pick<ControllerOptions, 'settings' | 'comfort'> = {},
) {
  let yes = remembered;
  const made = { workers: 0, opened: 0, terminated: 0 };
  const blobs = new MemoryBlobStore();
  const c = new VolunteerController({
    hubUrl,
    consent: { get: () => yes, set: (v) => (yes = v) },
    startWorker: (): ControllerWorker => {
      made.workers++;
      const engine = new ComputeEngine({
        runtime: new GpuRuntime({ gpu: dawnGpu() }),
        blobs,
        onnx: (shard, model, opts) => runOnnx(shard, model, opts),
      });
      return {
        probe: () => engine.probe(),
        runShard: (s, p) => engine.runShard(s, p),
        cancel: (id) => engine.cancel(id),
        terminate: async () => {
          made.terminated++;
          await engine.dispose();
        },
      };
    },
    open: async () => {
      made.opened++;
      const key = await TestKey.create();
      return {
        identity: { id: key.id, publicKey: key.publicKey, sign: (n: string) => key.sign(n) },
        outbox: new MemoryResultQueue(),
        blobs,
      };
    },
    volunteer: { socket: nodeSocket(), idleMs: 50, backoff: { minMs: 50, maxMs: 500 } },
    ...more,
  });
  controllers.push(c);
  const seen: VolunteerSnapshot[] = [];
  c.subscribe((s) => seen.push(s));
  return { c, made, seen, consent: () => yes };
}

describe('volunteer controller', () => {
  it('starts nothing before a yes, and nothing after a no', async () => {
    const { c, made, seen } = controller('http://127.0.0.1:9', false);
    expect(c.snapshot).toMatchObject({ state: 'asking', volunteerId: null, stats: null });
    await c.resume(); // no remembered yes
    c.no();
    expect(c.snapshot.state).toBe('declined');
    expect(c.snapshot.error).toMatch(/Nothing will run/);
    expect(made).toEqual({ workers: 0, opened: 0, terminated: 0 });
    expect(seen.map((s) => s.state)).toEqual(['declined']);
  });

  it('after a yes it probes, connects and works; the snapshot follows; stop forgets the yes', async () => {
    t = await testHub({ allowedOrigins: [EMBED_ORIGIN], expireEveryMs: 100 });
    const { token } = createToken(t.hub.store, 'alice');
    const { manifest, blobs } = await indexJob(2, { replication: 1 });
    await upload(t.hub.url, token, blobs);
    const r = await fetch(`${t.hub.url}/v1/jobs`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(manifest),
    });
    expect(r.status).toBe(201);
    const { c, made, seen, consent } = controller(t.hub.url, false);
    await c.yes();
    expect(consent()).toBe(true);
    await waitFor(() => (c.snapshot.stats?.valid ?? 0) === 2, 60_000, 'two validated results');
    const s = c.snapshot;
    expect(s.volunteerId).toMatch(/^[0-9a-f]{64}$/);
    expect(s.device).toMatch(/\S/);
    expect(s.stats).toMatchObject({ leases: 2, valid: 2, refused: 0, failed: 0 });
    expect(s.current).toMatch(/: valid \(\d+ ms on webgpu\)/);
    expect(s.error).toBeNull();
    // It went through the states a page shows, in order, starting with the probe.
    const states = seen.map((x) => x.state).filter((x, i, a) => i === 0 || a[i - 1] !== x);
    expect(states[0]).toBe('probing');
    expect(states).toContain('working');
    expect(made).toEqual({ workers: 1, opened: 1, terminated: 0 });
    await c.stop();
    expect(consent()).toBe(false);
    expect(c.snapshot.state).toBe('stopped');
    expect(made.terminated).toBe(1);
  }, 120_000);

  it('a remembered yes resumes without asking', async () => {
    t = await testHub({ allowedOrigins: [EMBED_ORIGIN] });
    const { c, made } = controller(t.hub.url, true);
    await c.resume();
    await waitFor(() => c.snapshot.state === 'connected', 30_000, 'the volunteer to connect');
    expect(made.workers).toBe(1);
    expect(c.snapshot.volunteerId).toMatch(/^[0-9a-f]{64}$/);
  }, 60_000);

  it('comfort and settings: a hidden tab or a low battery pauses, the volunteer\u2019s choices are kept', async () => {
    t = await testHub({ allowedOrigins: [EMBED_ORIGIN] });
    let comfort: Comfort = { hidden: false, battery: { charging: true, level: 0.9 } };
    const listeners = new Set<() => void>();
    const change = (c: Comfort) => {
      comfort = c;
      for (const l of listeners) l();
    };
    let saved: VolunteerSettings | null = null;
    const { c } = controller(t.hub.url, true, {
      settings: { get: () => ({ dutyCycle: 0.3 }), set: (s) => (saved = s) },
      comfort: {
        current: () => comfort,
        subscribe: (l) => {
          listeners.add(l);
          return () => listeners.delete(l);
        },
      },
    });
    expect(c.snapshot.settings).toEqual({ dutyCycle: 0.3, paused: false, background: false });
    await c.resume();
    await waitFor(() => c.snapshot.state === 'connected', 30_000, 'the volunteer to connect');
    expect(c.snapshot.pausedBy).toBeNull();

    change({ ...comfort, hidden: true });
    expect(c.snapshot.pausedBy).toBe('hidden');
    await waitFor(() => c.snapshot.state === 'paused', 2000, 'paused on hide');
    c.setBackground(true);
    expect(c.snapshot.pausedBy).toBeNull();
    await waitFor(() => c.snapshot.state !== 'paused', 2000, 'working again in the background');
    expect(saved).toEqual({ dutyCycle: 0.3, paused: false, background: true });

    change({ hidden: true, battery: { charging: false, level: BATTERY_PAUSE_LEVEL - 0.05 } });
    expect(c.snapshot.pausedBy).toBe('battery');
    change({ hidden: true, battery: { charging: true, level: BATTERY_PAUSE_LEVEL - 0.05 } });
    expect(c.snapshot.pausedBy).toBeNull();

    c.pause();
    expect(c.snapshot.pausedBy).toBe('you');
    expect(saved).toMatchObject({ paused: true });
    await waitFor(() => c.snapshot.state === 'paused', 2000, 'paused by the volunteer');
    c.unpause();
    expect(c.snapshot.pausedBy).toBeNull();
    c.setDutyCycle(0.01);
    expect(c.snapshot.settings.dutyCycle).toBe(0.1);
    expect(saved).toEqual({ dutyCycle: 0.1, paused: false, background: true });
  }, 60_000);

  it('gpuBusy counts the part of each shard inside the window', () => {
    expect(gpuBusy([], 10_000, 0)).toBe(0);
    expect(gpuBusy([{ at: 10_000, ms: 3000 }], 10_000, 0)).toBeCloseTo(0.3, 12);
    // A minute's window: a shard that ended 90 s ago counts nothing, one straddling the edge half.
    const now = 200_000;
    expect(
      gpuBusy(
        [
          { at: now - 90_000, ms: 5000 },
          { at: now - 59_000, ms: 2000 },
          { at: now, ms: 6000 },
        ],
        now,
        0,
      ),
    ).toBeCloseTo(7000 / 60_000, 12);
    expect(gpuBusy([{ at: now, ms: 120_000 }], now, 0)).toBe(1);
  });
});
