// Protocol fuzzing against one real hub (startHub on a real store — a SQLite file in a temp dir
// (fuzz.node.test.ts) or a PostgreSQL database (fuzz-pg.node.test.ts) — loopback, real
// WebSockets): thousands of seeded malformed, truncated, oversized and wrongly typed control
// messages and HTTP requests. Every one must get a typed error (or, for frames the WebSocket
// layer refuses, a close with its standard code), the hub must keep serving, and the store must
// be byte-for-byte what it was. The generators are in fuzz-gen.ts.
import { connect } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type HearthErrorCode, isHearthError, isHearthErrorCode } from '../../src/core/errors.ts';
import { importVolunteerKey } from '../../src/hub/identity.ts';
import { createToken } from '../../src/hub/tokens.ts';
import type { HubOptions } from '../../src/node/hub-server.ts';
import { manifestBlobs } from '../../src/node/hub-server.ts';
import { encodeResult, parseClientMessage, parseHubMessage } from '../../src/protocol/control.ts';
import { countJobFlops } from '../../src/protocol/flops.ts';
import { parseManifest } from '../../src/protocol/kinds/index.ts';
import type { OnnxManifest } from '../../src/protocol/manifest.ts';
import { indexOf, result, seededRng, truth } from '../hub/fixtures.ts';
import { mlp } from '../onnx/models.ts';
import { TestKey } from './control-helpers.ts';
import {
  badJsonBody,
  CONTROL_FIELD_LIMITS,
  type Json,
  MANIFEST_FIELD_LIMITS,
  MUTATIONS,
  mutateJson,
  mutateTensor,
  pick,
  type Rng,
} from './fuzz-gen.ts';
import { ADMIN, manifestJson, raw, sha, type TestHub, testHub, upload } from './hub-helpers.ts';

const ORIGIN = 'https://embed.example';
const MAX_MESSAGE = 64 * 1024;
const MAX_JSON = 64 * 1024;
const MAX_BLOB = 8192;
/** How many frames go out before their replies are read back (pipelining; under maxQueued). */
const BATCH = 50;

/** A raw WebSocket client: every text the hub sends, unparsed, and how it closed. */
class Wire {
  readonly texts: string[] = [];
  closed: { code: number; reason: string } | undefined;
  #wake: (() => void) | undefined;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (d) => {
      this.texts.push(d.toString());
      this.#wake?.();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.#wake?.();
    });
    ws.on('error', () => {});
  }

  static open(url: string): Promise<Wire> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { origin: ORIGIN });
      const w = new Wire(ws);
      ws.once('open', () => resolve(w));
      ws.once('unexpected-response', (_q, res) => reject(new Error(`refused: ${res.statusCode}`)));
    });
  }

  /** The next `n` texts, or fewer if the hub closes; a hang fails the test by its message. */
  async take(n: number, ms = 30_000): Promise<string[]> {
    const end = Date.now() + ms;
    while (this.texts.length < n && !this.closed) {
      if (Date.now() > end) throw new Error(`hung: ${this.texts.length} of ${n} replies in ${ms} ms`);
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        setTimeout(resolve, 50);
      });
    }
    return this.texts.splice(0, n);
  }

  async waitClose(ms = 30_000): Promise<{ code: number; reason: string }> {
    await this.take(Number.MAX_SAFE_INTEGER, ms).catch(() => {});
    if (!this.closed) throw new Error(`no close within ${ms} ms`);
    return this.closed;
  }

  close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      this.ws.once('close', () => resolve());
      this.ws.close();
    });
  }
}

async function authenticate(url: string, key: TestKey): Promise<Wire> {
  const w = await Wire.open(url);
  w.ws.send(JSON.stringify({ v: 2, id: 1, type: 'hello', publicKey: key.publicKey, capabilities: CAPS }));
  const ch = parseHubMessage((await w.take(1))[0]);
  if (ch.type !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(ch)}`);
  w.ws.send(JSON.stringify({ v: 2, id: 2, type: 'auth', signature: await key.sign(ch.nonce) }));
  const welcome = parseHubMessage((await w.take(1))[0]);
  if (welcome.type !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(welcome)}`);
  return w;
}

const CAPS = { maxBufferBytes: 1 << 30, features: ['shader-f16'] };

/**
 * Every row of every table of the hub's SQLite file, through a second, read-only connection: the
 * store as it is on disk, whatever the HubStore interface exposes.
 */
function dumpStore(dbPath: string): Record<string, unknown[]> {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
      name: string;
    }[];
    const out: Record<string, unknown[]> = {};
    for (const { name } of tables) {
      out[name] = db.prepare(`SELECT * FROM "${name}" ORDER BY rowid`).all();
    }
    return out;
  } finally {
    db.close();
  }
}

/** The error code the hub's FLOP count gives this model for the fuzz job, or undefined if it counts. */
function refusal(model: Uint8Array, m?: OnnxManifest): string | undefined {
  const manifest =
    m ??
    (parseManifest({
      v: 1,
      kind: 'onnx',
      model: '0'.repeat(64),
      inputs: { x: { sha256: '0'.repeat(64), dtype: 'f32', shape: [10, 16] } },
      batchInput: 'x',
      shardSize: 4,
      replication: 2,
      tolerance: 'exact',
      deadlineMs: 60_000,
      creditRate: 1,
    }) as OnnxManifest);
  try {
    countJobFlops(manifest, model);
    return undefined;
  } catch (e) {
    if (!isHearthError(e)) throw e;
    // An uncountable graph with declared FLOPs is accepted (the declared value is the fallback).
    if (e.code === 'onnx/unsupported' && manifest.flopsPerShard !== undefined) return undefined;
    return e.code;
  }
}

/** Each request template with a request id, as a HubSession sends it (mutations may break it). */
const withIds = (templates: Record<string, Json>): Record<string, Json> =>
  Object.fromEntries(
    Object.entries(templates).map(([k, t], i) => [k, { ...(t as object), id: i + 1 } as Json]),
  );

/** Where a connection is: fresh, said hello (challenged, no auth yet), or authenticated. */
type Side = 'fresh' | 'challenged' | 'authed';

/**
 * What the hub answers, as the test compares it: the error code, with the scheduler's two ways of
 * saying "not yours" (the fuzz volunteer holds no lease) as one, 'refused'.
 */
type Want = HearthErrorCode | 'refused';
const categoryOf = (code: string): string =>
  code === 'lease/unknown' || code === 'shard/unknown' ? 'refused' : code;

/**
 * A reply as the test reads it: version 2, or the version-1 error a page of the previous release
 * is refused with (a code it knows, the reason first in the sentence).
 */
function readReply(text: string): { code: string; message: string; details?: Record<string, unknown> } {
  const o = JSON.parse(text) as { v?: unknown; code?: unknown; message?: unknown };
  if (o.v === 1) {
    expect(o).toMatchObject({ type: 'error', code: 'bad-message' });
    expect(String(o.message)).toMatch(/^protocol\/version: /);
    return { code: 'protocol/version', message: String(o.message) };
  }
  const m = parseHubMessage(text);
  if (m.type !== 'error') throw new Error(`expected an error, got ${text.slice(0, 300)}`);
  return m as { code: string; message: string; details?: Record<string, unknown> };
}

/** What the hub must answer to a text frame it can read, from the protocol's own parser. */
async function expectedCode(frame: string, side: Side): Promise<Want | 'skip'> {
  let m: ReturnType<typeof parseClientMessage>;
  try {
    m = parseClientMessage(frame);
  } catch (e) {
    if (!isHearthError(e)) throw e;
    return e.code;
  }
  switch (m.type) {
    case 'hello':
      if (side !== 'fresh') return 'control/bad-state';
      // A hello with a real P-256 key on a fresh connection is answered with a challenge: not a
      // fuzz case. One whose key is not a key is refused as bad input.
      try {
        await importVolunteerKey(m.publicKey);
        return 'skip';
      } catch {
        return 'input/invalid';
      }
    case 'auth':
      // After a hello, any well-formed auth is verified, fails and closes: the closing path has
      // its own tests (control-plane.node.test.ts); elsewhere it is out of order.
      return side === 'challenged' ? 'skip' : 'control/bad-state';
    case 'lease-request':
      // A valid request on an authenticated connection takes a lease: not a fuzz case.
      return side === 'authed' ? 'skip' : 'control/unauthenticated';
    case 'announce':
    case 'holders-request':
      // Well-formed swarm messages are answered (the swarm lives in memory, not the store).
      return side === 'authed' ? 'skip' : 'control/unauthenticated';
    case 'allreduce-report':
    case 'allreduce-fallback':
      // The templates' groups never hold the fuzz volunteer's peer id (the hub picks it): the hub
      // refuses both without storing or averaging anything.
      return side === 'authed' ? 'input/invalid' : 'control/unauthenticated';
    default:
      // The fuzz volunteer holds no lease: heartbeats and results are the scheduler's to refuse.
      return side === 'authed' ? 'refused' : 'control/unauthenticated';
  }
}

/** The store a fuzzed hub runs on, and every row of it as one string (`dump`). */
export interface FuzzStore {
  readonly name: string;
  /** Options for testHub: `{}` for its SQLite file, `{ store }` for another store. */
  open(): Promise<Partial<HubOptions>>;
  /** Every row of every table of the hub's store as it is on disk, `t` being the hub. */
  dump(t: TestHub): Promise<string>;
}

/** The SQLite file of testHub, read through a second, read-only connection. */
export const SQLITE_FUZZ_STORE: FuzzStore = {
  name: 'SQLite',
  open: async () => ({}),
  dump: async (t) => JSON.stringify(dumpStore(join(t.dir, 'hub.db'))),
};

/** The fuzz suite against a hub on `store`. */
export function describeFuzz(store: FuzzStore): void {
  describe(`protocol fuzz against a running hub (${store.name})`, () => {
    let t: TestHub;
    let url: string;
    let wsUrl: string;
    let token: string;
    let auth: Record<string, string>;
    let goodManifest: Record<string, unknown>;
    let uploaded: Set<string>;
    let onnxManifest: Record<string, unknown>;
    /** Uploaded blobs by hash, to predict what the hub's FLOP count makes of a model. */
    const blobBytes = new Map<string, Uint8Array>();
    /** Uploaded models that the hub must refuse (truncated or bit-flipped test models). */
    const corrupt: string[] = [];
    let holder: Wire;
    let heldLease: { lease: string; shard: string; job: string };
    let fuzzKey: TestKey;
    let before: string;
    const internal: unknown[] = [];
    const counts = { control: 0, controlCloses: 0, http: 0, raw: 0 };

    beforeAll(async () => {
      t = await testHub({
        ...(await store.open()),
        maxBlobBytes: MAX_BLOB,
        maxJsonBytes: MAX_JSON,
        allowedOrigins: [ORIGIN],
        // Leases must not expire mid-fuzz: an expiry is a store change this test would see.
        expireEveryMs: 3_600_000,
        volunteers: {
          // A high rate: this test pipelines thousands of frames on a few connections. The default
          // limit's refusal of floods is control-plane.node.test.ts's "a flood over the rate limit".
          messagesPerSecond: 1e6,
          burst: 1e6,
          maxQueued: 1000,
          maxMessageBytes: MAX_MESSAGE,
          authTimeoutMs: 600_000,
          onInternalError: (e) => internal.push(e),
        },
      });
      url = t.hub.url;
      wsUrl = `${url.replace('http', 'ws')}/v1/volunteer`;
      token = createToken(t.hub.store, 'alice').token;
      auth = { authorization: `Bearer ${token}` };
      const { manifest, blobs } = manifestJson(3, { deadlineMs: 3_600_000 });
      await upload(url, token, blobs);
      uploaded = new Set(blobs.map((b) => sha(b)));
      goodManifest = manifest;
      // An ONNX job's model is read and counted at submit (flops.ts): broken models are a fuzz
      // surface too. Each corrupted copy is kept only if the same counter refuses it.
      const model = mlp().bytes.slice();
      const x = new Uint8Array(10 * 16 * 4);
      onnxManifest = {
        v: 1,
        kind: 'onnx',
        model: sha(model),
        inputs: { x: { sha256: sha(x), dtype: 'f32', shape: [10, 16] } },
        batchInput: 'x',
        shardSize: 4,
        replication: 2,
        tolerance: { rtol: 1e-4, atol: 1e-6 },
        deadlineMs: 3_600_000,
        creditRate: 1,
      };
      const crng = seededRng(77);
      const broken: Uint8Array<ArrayBuffer>[] = [];
      while (broken.length < 40) {
        let b = model.slice();
        if (crng() < 0.5) b = b.slice(0, Math.floor(crng() * b.length));
        else for (let f = 0; f < 3; f++) b[Math.floor(crng() * b.length)]! ^= 1 << Math.floor(crng() * 8);
        if (refusal(b) && !corrupt.includes(sha(b))) {
          broken.push(b);
          corrupt.push(sha(b));
        }
      }
      for (const b of [model, x, ...broken]) blobBytes.set(sha(b), b);
      await upload(url, token, [model, x, ...broken]);
      for (const h of blobBytes.keys()) uploaded.add(h);
      const r = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(manifest),
      });
      expect(r.status).toBe(201);
      const job = ((await r.json()) as { job: string }).job;
      // Another volunteer holds a lease, so that heartbeats and results for it can be forged.
      holder = await authenticate(wsUrl, await TestKey.create());
      holder.ws.send('{"v":2,"id":3,"type":"lease-request"}');
      const lease = parseHubMessage((await holder.take(1))[0]);
      if (lease.type !== 'lease') throw new Error('expected a lease');
      expect(lease.job).toBe(job);
      heldLease = { lease: lease.lease, shard: lease.shard, job };
      fuzzKey = await TestKey.create();
      // The hub commits in groups a few ms apart: read the file once the lease is on it.
      await t.hub.store.settled();
      before = await store.dump(t);
    });

    afterAll(async () => {
      await holder?.close();
      await t?.dispose();
      console.log(
        `fuzz: ${counts.control} control messages (${counts.controlCloses} of them closes), ` +
          `${counts.http} HTTP requests, ${counts.raw} raw-socket requests: ` +
          `${counts.control + counts.http + counts.raw} cases in all`,
      );
    });

    it('6,000+ malformed control messages, before and after auth, each get a typed error', async () => {
      const rng = seededRng(6000);
      const other = await TestKey.create();
      const valid = encodeResult(
        await result(heldLease.shard, heldLease.job, truth(indexOf(heldLease.shard))),
      );
      const templates: Record<string, Json> = withIds({
        hello: { v: 2, type: 'hello', publicKey: other.publicKey, capabilities: CAPS },
        helloJwk: {
          v: 2,
          type: 'hello',
          publicKey: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'B'.repeat(43) },
          capabilities: CAPS,
        },
        auth: { v: 2, type: 'auth', signature: 'A'.repeat(86) },
        leaseRequest: { v: 2, type: 'lease-request' },
        // Heartbeats for another volunteer's lease and for leases that never were.
        heartbeat: { v: 2, type: 'heartbeat', lease: heldLease.lease },
        heartbeatNone: { v: 2, type: 'heartbeat', lease: `${heldLease.shard}@nobody@1` },
        // Results for a shard leased to someone else, and for shards never planned.
        result: { v: 2, type: 'result', result: valid },
        resultNone: { v: 2, type: 'result', result: { ...valid, shard: `${heldLease.job}/99` } },
        resultOtherJob: { v: 2, type: 'result', result: { ...valid, job: 'job-none', shard: 'job-none/0' } },
        // The blob swarm's messages.
        announce: { v: 2, type: 'announce', blobs: ['a'.repeat(64), 'b'.repeat(64)] },
        holdersRequest: { v: 2, type: 'holders-request', sha256: 'c'.repeat(64) },
        // Error reports (issue 10) for a shard leased to someone else, and for one never planned.
        shardFailed: {
          v: 2,
          type: 'shard-failed',
          shard: heldLease.shard,
          code: 'wgsl/compile',
          message: 'WGSL error at line 1, column 1',
        },
        shardFailedNone: {
          v: 2,
          type: 'shard-failed',
          shard: `${heldLease.job}/99`,
          code: 'gpu/device-lost',
          message: 'x',
        },
        // Accountable all-reduce (issue 5), for a group of other peers.
        allreduceReport: {
          v: 2,
          type: 'allreduce-report',
          round: 'job-1/round-1',
          group: [`h${'1'.repeat(32)}`, `h${'2'.repeat(32)}`],
          contributors: [`h${'1'.repeat(32)}`],
          contributions: [
            {
              peer: `h${'1'.repeat(32)}`,
              volunteer: 'd'.repeat(64),
              sha256: 'e'.repeat(64),
              signature: 'A'.repeat(86),
            },
          ],
          mean: 'f'.repeat(64),
          dropped: [`h${'2'.repeat(32)}`],
        },
        allreduceFallback: {
          v: 2,
          type: 'allreduce-fallback',
          round: 'job-1/round-1',
          group: [`h${'1'.repeat(32)}`, `h${'2'.repeat(32)}`],
          elements: 1024,
          sha256: 'e'.repeat(64),
        },
      } as unknown as Record<string, Json>);
      const names = Object.keys(templates);

      /** One frame: text (sometimes as raw bytes), binary, or tensor mutations of a result. */
      const generate = (r: Rng): { frame: string | Buffer; binary: boolean } => {
        const roll = r();
        if (roll < 0.03) {
          const text = JSON.stringify(templates[pick(r, names)]);
          return { frame: Buffer.from(r() < 0.5 ? text : text.slice(0, 10)), binary: true };
        }
        const name = pick(r, names);
        const template = templates[name]!;
        if (name.startsWith('result') && roll < 0.25) {
          return { frame: mutateTensor(r, template, r() < 0.5 ? 'base64' : 'tensor-bytes'), binary: false };
        }
        // Valid messages are part of the mix too: each has its one right answer (expectedCode).
        if (roll < 0.3) return { frame: JSON.stringify(template), binary: false };
        return { frame: mutateJson(r, template, CONTROL_FIELD_LIMITS, MAX_MESSAGE).text, binary: false };
      };

      const authed = await authenticate(wsUrl, fuzzKey);
      const anon = await Wire.open(wsUrl);
      // Said hello with a real key, never answered the challenge.
      const challenged = await Wire.open(wsUrl);
      challenged.ws.send(
        JSON.stringify({ v: 2, id: 1, type: 'hello', publicKey: other.publicKey, capabilities: CAPS }),
      );
      expect(parseHubMessage((await challenged.take(1))[0]).type).toBe('challenge');
      const wires: Record<Side, Wire> = { authed, fresh: anon, challenged };
      const codes = new Map<string, number>();
      const kinds = new Set<string>();
      for (const m of MUTATIONS) kinds.add(m);
      const closers: { frame: string | Buffer; binary: boolean }[] = [];
      const target = 6200;
      while (counts.control < target) {
        for (const side of ['authed', 'fresh', 'challenged'] as const) {
          const wire = wires[side];
          const sent: { frame: string | Buffer; binary: boolean; want: Want }[] = [];
          while (sent.length < BATCH) {
            const c = generate(rng);
            const bytes = typeof c.frame === 'string' ? Buffer.byteLength(c.frame) : c.frame.length;
            if (bytes > MAX_MESSAGE) {
              closers.push(c);
              continue;
            }
            // What the hub will read: ws sends strings as UTF-8, lone surrogates become U+FFFD.
            const want = c.binary
              ? 'control/unsupported'
              : await expectedCode(Buffer.from(c.frame as string, 'utf8').toString('utf8'), side);
            if (want === 'skip') continue;
            sent.push({ ...c, want });
          }
          for (const c of sent) wire.ws.send(c.frame, { binary: c.binary });
          const replies = await wire.take(sent.length);
          expect(
            wire.closed,
            `the ${side} connection closed: ${JSON.stringify(wire.closed)}`,
          ).toBeUndefined();
          expect(replies).toHaveLength(sent.length);
          const got: string[] = [];
          for (const text of replies) {
            const m = readReply(text);
            expect(isHearthErrorCode(m.code), m.code).toBe(true);
            expect(m.message.length).toBeGreaterThan(0);
            // A malformed message is answered with the path of what was wrong in it.
            const path = (m as { details?: { path?: unknown } }).details?.path;
            if (m.code === 'input/invalid' && typeof path === 'string' && path.startsWith('message')) {
              expect(m.message.startsWith(path), m.message).toBe(true);
            }
            got.push(categoryOf(m.code));
            codes.set(m.code, (codes.get(m.code) ?? 0) + 1);
          }
          // Binary frames are answered at once, text frames in order behind each other: compare
          // the answers as a multiset, each frame's expected code against what came back.
          expect(got.sort()).toEqual(sent.map((c) => c.want).sort());
          counts.control += sent.length;
        }
      }
      // Frames the WebSocket layer refuses: over maxMessageBytes (1009), and text frames that are
      // not UTF-8 (1007). Each on its own connection, since the hub closes it.
      for (let i = 0; i < 40; i++) {
        closers.unshift({ frame: Buffer.from([0x7b, 0xff, 0xfe, 0xc0, 0x80, 0x7d]), binary: false });
      }
      // Authenticated closers use a key of their own: a second connection of fuzzKey would replace
      // `authed` (one connection per volunteer), which must stay open to the end.
      const closerKey = await TestKey.create();
      for (const [i, c] of closers.slice(0, 120).entries()) {
        const w = i % 2 === 0 ? await authenticate(wsUrl, closerKey) : await Wire.open(wsUrl);
        w.ws.send(c.frame, { binary: c.binary });
        const closed = await w.waitClose();
        const big = (typeof c.frame === 'string' ? Buffer.byteLength(c.frame) : c.frame.length) > MAX_MESSAGE;
        expect(closed.code).toBe(big ? 1009 : 1007);
        expect(w.texts).toEqual([]);
        counts.control++;
        counts.controlCloses++;
      }
      expect(counts.controlCloses).toBeGreaterThan(40);
      // The fuzz reached past the parser: the scheduler refused, the state machine refused.
      for (const code of [
        'input/invalid',
        'protocol/version',
        'control/unauthenticated',
        'control/bad-state',
        'lease/unknown',
        'shard/unknown',
        'control/unsupported',
      ]) {
        expect(codes.get(code) ?? 0, code).toBeGreaterThan(20);
      }
      expect(codes.get('control/internal') ?? 0).toBe(0);
      expect(internal).toEqual([]);
      expect(counts.control).toBeGreaterThanOrEqual(6000);
      // Still serving on the same connections.
      authed.ws.send('{"v":2,"type":"heartbeat","id":9,"lease":"x"}');
      expect(parseHubMessage((await authed.take(1))[0])).toMatchObject({
        type: 'error',
        code: 'lease/unknown',
        re: 9,
      });
      await Promise.all([authed.close(), anon.close(), challenged.close()]);
    }, 120_000);

    it('4,000+ malformed HTTP requests each get a 4xx JSON error', async () => {
      const rng = seededRng(4000);
      const good = JSON.stringify(goodManifest);
      const jobId = JSON.parse(before).jobs[0].id as string;
      const statuses = new Map<number, number>();

      type Req = {
        method: string;
        path: string;
        headers: Record<string, string>;
        body?: string | Buffer;
        /** The error code the hub must give, where the case has exactly one. */
        code?: string;
      };
      const manifestCase = (): Req => {
        // A mutation that leaves the manifest valid with every blob uploaded (and, for ONNX, a model
        // the hub can count) would create a job: draw again (those are not malformed).
        for (;;) {
          const template = rng() < 0.5 ? goodManifest : onnxManifest;
          const { text } = mutateJson(rng, template as never, MANIFEST_FIELD_LIMITS, MAX_JSON * 2);
          let ok = false;
          try {
            const m = parseManifest(JSON.parse(text));
            ok = manifestBlobs(m).every((h) => uploaded.has(h));
            if (ok && m.kind === 'onnx') ok = refusal(blobBytes.get(m.model)!, m) === undefined;
          } catch {
            ok = false;
          }
          if (ok) continue;
          const type = pick(rng, ['application/json', 'text/plain', 'application/x-www-form-urlencoded', '']);
          return {
            method: 'POST',
            path: '/v1/jobs',
            headers: { ...auth, ...(type ? { 'content-type': type } : {}) },
            body: text,
          };
        }
      };
      /** A valid ONNX manifest naming a model the hub must refuse when it counts its FLOPs. */
      const modelCase = (): Req => {
        const model = pick(rng, corrupt);
        return {
          method: 'POST',
          path: '/v1/jobs',
          headers: auth,
          body: JSON.stringify({ ...onnxManifest, model }),
          code: refusal(blobBytes.get(model)!, parseManifest({ ...onnxManifest, model }) as OnnxManifest)!,
        };
      };
      const jsonCase = (): Req => ({
        method: 'POST',
        path: '/v1/jobs',
        headers: {
          ...auth,
          'content-type': pick(rng, ['application/json', 'text/plain', 'multipart/form-data']),
        },
        body: badJsonBody(rng, good),
      });
      const blobCase = (): Req => {
        const bytes = Buffer.from(
          Array.from({ length: 1 + Math.floor(rng() * 3000) }, () => Math.floor(rng() * 256)),
        );
        const right = sha(bytes);
        const wrong = sha(Buffer.concat([bytes, Buffer.from([1])]));
        switch (Math.floor(rng() * 6)) {
          case 0: // the bytes hash to something else (or are over the limit)
            return { method: 'PUT', path: `/v1/blobs/${wrong}`, headers: auth, body: bytes };
          case 1: // over the limit, declared
            return {
              method: 'PUT',
              path: `/v1/blobs/${right}`,
              headers: auth,
              body: Buffer.alloc(MAX_BLOB + 1 + Math.floor(rng() * 5000)),
            };
          case 2: {
            // Not a hash. (Reads carry no body: Node's client cannot read a reply to a HEAD whose
            // chunked body the hub did not wait for, a client quirk and not the hub's answer.)
            const method = pick(rng, ['PUT', 'GET', 'HEAD']);
            return {
              method,
              path: `/v1/blobs/${pick(rng, [right.toUpperCase(), right.slice(1), `${right}0`, 'x', '%00', right.replace(/./, 'g')])}`,
              headers: auth,
              ...(method === 'PUT' ? { body: bytes } : {}),
            };
          }
          case 3: // no token, or a bad one
            return {
              method: 'PUT',
              path: `/v1/blobs/${right}`,
              headers: pick(rng, [{}, { authorization: 'Bearer nope' }]),
              body: bytes,
            };
          case 4: // missing, or a range outside it
            return { method: 'GET', path: `/v1/blobs/${right}`, headers: {} };
          default:
            return {
              method: 'GET',
              path: `/v1/blobs/${[...uploaded][0]}`,
              headers: { range: pick(rng, ['bytes=16-', 'bytes=999-1000', 'bytes=-0', 'bytes=20-30']) },
            };
        }
      };
      const routeCase = (): Req => {
        const admin = { authorization: `Bearer ${ADMIN}` };
        const options: (() => Req)[] = [
          () => ({
            method: pick(rng, ['GET', 'POST', 'PUT', 'DELETE']),
            // Under /v1 only: every other path is the hub's static pages.
            path: pick(rng, [
              '/v1/',
              '/v1/v2/jobs',
              '/v1',
              '/v1/nothing',
              `/v1/jobs/${jobId}/x`,
              `/v1/${'a/'.repeat(40)}`,
              '/v1/jobs/../tokens',
              '/v1/blobs',
            ]),
            headers: auth,
          }),
          // (GET /v1/jobs is the caller's job list.)
          () => ({ method: pick(rng, ['PUT', 'DELETE', 'PATCH']), path: '/v1/jobs', headers: auth }),
          // All-reduce routes (issue 5): no valid ticket exists, and the audit route's round is bad.
          // Bodies only on the ticket routes, which read a small refused body before answering.
          () => {
            const ticketRoute = rng() < 0.7;
            const method = pick(rng, ['GET', 'PUT', 'POST', 'DELETE', 'HEAD']);
            return {
              method,
              path: ticketRoute
                ? pick(rng, [
                    '/v1/allreduce/r1/contributions',
                    '/v1/allreduce/r1/mean',
                    '/v1/allreduce/r1/other',
                    '/v1/allreduce/a%00b/mean',
                    `/v1/allreduce/${'x'.repeat(200)}/contributions`,
                  ])
                : pick(rng, [`/v1/allreduce/${'x'.repeat(200)}`, '/v1/allreduce/a%01b']),
              headers: pick(rng, [{}, auth, { authorization: `Bearer ${'0'.repeat(64)}` }]),
              // (node:http's client cannot send a body with HEAD or GET and still read the answer.)
              ...(ticketRoute && method !== 'HEAD' && method !== 'GET' && rng() < 0.5
                ? { body: Buffer.alloc(Math.floor(rng() * 64)) }
                : {}),
            };
          },
          () => ({
            method: pick(rng, ['POST', 'PUT', 'PATCH']),
            path: `/v1/jobs/${jobId}`,
            headers: auth,
          }),
          () => ({
            method: 'GET',
            path: pick(rng, [
              '/v1/jobs/none',
              '/v1/jobs/none/results',
              `/v1/jobs/${jobId}/results/99/y`,
              `/v1/jobs/${jobId}/results/0/zz`,
              `/v1/jobs/${jobId}/results/%2e%2e/y`,
            ]),
            headers: auth,
          }),
          () => ({
            method: 'GET',
            path: pick(rng, ['/v1/jobs/%zz', '/v1/jobs/%', `/v1/jobs/${'x'.repeat(2100)}`, '/v1/%E0%A4%A']),
            headers: auth,
          }),
          () => ({
            method: pick(rng, ['GET', 'POST']),
            path: `/v1/jobs/${jobId}`,
            headers: pick(rng, [
              {},
              { authorization: '' },
              { authorization: 'Bearer' },
              { authorization: `Bearer ${token}x` },
              { authorization: `Basic ${token}` },
              { authorization: `Bearer ${'A'.repeat(4000)}` },
              { authorization: `Bearer ${token} ${token}` },
            ]),
          }),
          () => ({
            method: 'GET',
            path: `/v1/jobs/${jobId}`,
            headers: {
              ...auth,
              origin: pick(rng, [
                'https://evil.example',
                'null',
                'http://embed.example',
                'https://embed.example.evil',
              ]),
            },
          }),
          () => ({
            method: pick(rng, ['GET', 'POST']),
            path: '/v1/tokens',
            headers: auth,
            body: '{"name":"mallory"}',
          }),
          () => ({
            method: 'POST',
            path: '/v1/tokens',
            headers: admin,
            body: pick(rng, [
              '{"name":""}',
              '{"name":"no spaces"}',
              '{"name":"alice"}',
              '{"name":7}',
              '[]',
              '{',
              `{"name":"${'n'.repeat(300)}"}`,
            ]),
          }),
          () => ({
            method: 'DELETE',
            path: pick(rng, ['/v1/tokens/nobody', '/v1/tokens/%zz']),
            headers: admin,
          }),
        ];
        return pick(rng, options)();
      };

      const cases: Req[] = [];
      for (let i = 0; i < 2400; i++) cases.push(manifestCase());
      for (let i = 0; i < 200; i++) cases.push(modelCase());
      // "__proto__" as a tensor name: JSON.parse makes it an own key, but copying it into a plain
      // object would set that object's prototype instead (a tensor that vanishes when stored).
      const x = (onnxManifest.inputs as Record<string, unknown>).x;
      for (const text of [
        `{${JSON.stringify({ ...onnxManifest, batchInput: '__proto__', flopsPerShard: 5 })
          .slice(1)
          .replace('"inputs":{"x":', '"inputs":{"__proto__":')}`,
        JSON.stringify({ ...onnxManifest, flopsPerShard: 5 }).replace(
          '"inputs":{',
          `"inputs":{"__proto__":${JSON.stringify(x)},`,
        ),
      ]) {
        for (let i = 0; i < 10; i++)
          cases.push({ method: 'POST', path: '/v1/jobs', headers: auth, body: text, code: 'input/invalid' });
      }
      for (let i = 0; i < 600; i++) cases.push(jsonCase());
      for (let i = 0; i < 600; i++) cases.push(blobCase());
      for (let i = 0; i < 600; i++) cases.push(routeCase());
      // A few over maxJsonBytes, declared and streamed.
      for (let i = 0; i < 20; i++) {
        cases.push({
          method: 'POST',
          path: '/v1/jobs',
          headers: auth,
          body: JSON.stringify({ ...goodManifest, name: 'x'.repeat(MAX_JSON) }),
        });
      }

      const run = async (c: Req) => {
        const chunked = c.body !== undefined && rng() < 0.2;
        const res = await raw(url, {
          method: c.method,
          path: c.path,
          headers: c.headers,
          ...(c.body === undefined
            ? {}
            : chunked
              ? { chunks: [c.body.slice(0, 7), c.body.slice(7)] }
              : { body: c.body }),
        });
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        const what = `${c.method} ${c.path.slice(0, 80)} → ${res.status} ${res.body.toString().slice(0, 200)}`;
        expect(res.status, what).toBeGreaterThanOrEqual(400);
        expect(res.status, what).toBeLessThan(500);
        if (c.method !== 'HEAD') {
          expect(String(res.headers['content-type']), what).toMatch(/^application\/json/);
          const body = JSON.parse(res.body.toString()) as { error: { code: string; message: string } };
          expect(body.error.code, what).toMatch(/^[a-z]+\/[a-z-]+$/);
          if (c.code) expect(body.error.code, what).toBe(c.code);
          // A refused manifest names the bad field (or the body, when it is not JSON at all).
          if (c.path === '/v1/jobs' && body.error.code === 'input/invalid') {
            expect(body.error.message, what).toMatch(/^(manifest|body)(\.|\[|:)/);
          }
          expect(body.error.message.length, what).toBeGreaterThan(0);
        }
        counts.http++;
      };
      // A few requests at a time: the hub serves them concurrently, as it would strangers.
      for (let i = 0; i < cases.length; i += 8) await Promise.all(cases.slice(i, i + 8).map(run));

      // Below HTTP: requests Node's parser refuses still get a JSON error, never a dropped hub.
      const junk = [
        'NOT HTTP AT ALL\r\n\r\n',
        'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n',
        'POST /v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n',
        `GET /v1/jobs HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`,
        'FOO /v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n',
        'GET /v1/jobs HTTP/9.9\r\nHost: x\r\n\r\n',
        'GET /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab',
        'GET /v1/jobs HTTP/1.1\r\nHo st: x\r\n\r\n',
      ];
      for (let i = 0; i < 80; i++) {
        const reply = await new Promise<string>((resolve) => {
          const parts: Buffer[] = [];
          const sock = connect(t.hub.port, '127.0.0.1', () => sock.end(junk[i % junk.length]!));
          sock.on('data', (d: Buffer) => parts.push(d));
          sock.on('error', () => resolve(Buffer.concat(parts).toString()));
          sock.on('close', () => resolve(Buffer.concat(parts).toString()));
        });
        expect(reply, junk[i % junk.length]!.slice(0, 60)).toMatch(/^HTTP\/1\.1 4\d\d /);
        expect(reply).toMatch(/\r\n\r\n\{"error":\{"code":"http\/[a-z-]+","message":"[^"]+"/);
        counts.raw++;
      }
      // Uploads cut off mid-body: nothing is answered, nothing is kept.
      for (let i = 0; i < 40; i++) {
        const bytes = Buffer.alloc(1000, i);
        await new Promise<void>((resolve) => {
          const sock = connect(t.hub.port, '127.0.0.1', () => {
            sock.write(
              `PUT /v1/blobs/${sha(bytes)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Length: 1000\r\n\r\n`,
            );
            sock.write(bytes.subarray(0, 10 + i * 20), () => sock.destroy());
          });
          sock.on('error', () => resolve());
          sock.on('close', () => resolve());
        });
        counts.raw++;
      }
      for (const s of [400, 401, 403, 404, 405, 413, 416])
        expect(statuses.get(s) ?? 0, `status ${s}`).toBeGreaterThan(0);
      expect(counts.http + counts.raw).toBeGreaterThanOrEqual(4000);
    }, 180_000);

    it('afterwards the store is unchanged, and valid work still goes through', async () => {
      await t.hub.store.settled();
      expect(await store.dump(t)).toBe(before);
      expect(internal.map(String)).toEqual([]);
      // The blob folder holds exactly what was uploaded on purpose: no partial or refused uploads.
      const { readdirSync } = await import('node:fs');
      for (let i = 0; i < 100 && readdirSync(t.blobDir).some((f) => f.startsWith('.')); i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(readdirSync(t.blobDir).sort()).toEqual([...uploaded].sort());

      // A valid lease/result cycle: the holder's result is accepted; a new volunteer gets a lease.
      const valid = encodeResult(
        await result(heldLease.shard, heldLease.job, truth(indexOf(heldLease.shard))),
      );
      holder.ws.send(JSON.stringify({ v: 2, id: 4, type: 'result', result: valid }));
      expect(parseHubMessage((await holder.take(1))[0])).toMatchObject({
        type: 'ack',
        shard: heldLease.shard,
        outcome: 'pending',
      });
      const fresh = await authenticate(wsUrl, fuzzKey);
      fresh.ws.send('{"v":2,"id":3,"type":"lease-request"}');
      expect(parseHubMessage((await fresh.take(1))[0]).type).toBe('lease');
      await fresh.close();
      // And a valid job is still accepted.
      const r = await fetch(`${url}/v1/jobs`, {
        method: 'POST',
        headers: auth,
        body: JSON.stringify(goodManifest),
      });
      expect(r.status).toBe(201);
    }, 60_000);
  });
}
