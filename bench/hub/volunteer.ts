// A bare Node volunteer for the hub bench: a real P-256 key (WebCrypto, like the browser's), the
// real control protocol over a real WebSocket, one request in flight at a time. Results are
// computed in JS (no GPU): shard i of the bench's WGSL job answers [i, i + 0.5, -i, 1 / (i + 1)].
import { createHash } from 'node:crypto';
import WebSocket from 'ws';
import { challengeBytes, encodeResult, toBase64Url, volunteerIdOf } from '../../src/protocol/control.ts';
import type { ShardResult } from '../../src/protocol/shard.ts';

/** What the hub says, unvalidated: the bench trusts its own hub and only reads a few fields. */
export interface HubReply {
  readonly type: string;
  readonly [k: string]: unknown;
}

const CAPS = { maxBufferBytes: 2 ** 30, features: [] as string[] };

/** The honest answer of shard `shard` ("job-…/7" → shard 7) as a wire-ready result message. */
export function answer(shard: string, job: string): object {
  return { v: 2, type: 'result', result: answerOf(shard, job) };
}

/** The honest answer of a shard as a wire result (base64url bytes). */
function answerOf(shard: string, job: string): object {
  const i = Number(shard.slice(shard.lastIndexOf('/') + 1));
  const y = Float32Array.from([i, i + 0.5, -i, 1 / (i + 1)]);
  const data = y.buffer;
  const r: ShardResult = {
    v: 1,
    shard,
    job,
    kind: 'wgsl',
    outputs: [
      {
        name: 'y',
        dtype: 'f32',
        shape: [4],
        data,
        sha256: createHash('sha256').update(new Uint8Array(data)).digest('hex'),
      },
    ],
    backend: 'webgpu',
    device: 'bench',
    ms: 0,
  };
  return encodeResult(r);
}

export class BenchVolunteer {
  readonly ws: WebSocket;
  #waiter: ((m: HubReply) => void) | undefined;
  #fail: ((e: Error) => void) | undefined;
  closed = false;
  #id = 0;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as HubReply & { re?: number };
      // A push (no `re`, e.g. work-available) answers nothing: the loop asks again anyway.
      if (m.re === undefined && m.type !== 'error') return;
      const w = this.#waiter;
      this.#waiter = undefined;
      this.#fail = undefined;
      w?.(m);
    });
    ws.on('close', () => {
      this.closed = true;
      this.#fail?.(new Error('the hub closed the connection'));
    });
    ws.on('error', () => {});
  }

  /** Connects and completes hello → challenge → auth → welcome. */
  static async connect(url: string): Promise<BenchVolunteer> {
    const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, [
      'sign',
      'verify',
    ]);
    const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
    const id = await volunteerIdOf(spki);
    const ws = new WebSocket(url, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
    });
    const v = new BenchVolunteer(ws);
    const ch = await v.request({ v: 2, type: 'hello', publicKey: toBase64Url(spki), capabilities: CAPS });
    if (ch.type !== 'challenge') throw new Error(`expected a challenge, got ${JSON.stringify(ch)}`);
    const sig = await crypto.subtle.sign(
      { name: 'ECDSA', hash: 'SHA-256' },
      pair.privateKey,
      challengeBytes(ch.nonce as string, id),
    );
    const w = await v.request({ v: 2, type: 'auth', signature: toBase64Url(sig) });
    if (w.type !== 'welcome') throw new Error(`expected welcome, got ${JSON.stringify(w)}`);
    return v;
  }

  /** Sends one request (one at a time) and resolves with the hub's reply. */
  request(m: object): Promise<HubReply> {
    return new Promise<HubReply>((resolve, reject) => {
      if (this.closed) return reject(new Error('the connection is closed'));
      this.#waiter = resolve;
      this.#fail = reject;
      this.ws.send(JSON.stringify({ ...m, id: ++this.#id }));
    });
  }

  /**
   * lease → result → ack until `until` (ms since the epoch); returns the acks by outcome and the
   * number of errors the hub sent. `batch` > 1: lease-batch → results → acks, up to `batch` shards
   * a message.
   */
  async work(
    until: number,
    batch = 1,
  ): Promise<{ acks: Record<string, number>; errors: number; idle: number }> {
    const acks: Record<string, number> = {};
    let errors = 0;
    let idle = 0;
    while (batch > 1 && Date.now() < until && !this.closed) {
      const m = await this.request({ v: 2, type: 'lease-batch', max: batch });
      if (m.type !== 'leases') {
        if (m.type === 'no-work') idle++;
        else errors++;
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const leases = m.leases as { shard: string; job: string }[];
      const reply = await this.request({
        v: 2,
        type: 'results',
        results: leases.map((l) => answerOf(l.shard, l.job)),
      });
      if (reply.type !== 'acks') {
        errors++;
        continue;
      }
      for (const a of reply.acks as { outcome?: string }[]) {
        if (a.outcome === undefined) errors++;
        else acks[a.outcome] = (acks[a.outcome] ?? 0) + 1;
      }
    }
    while (Date.now() < until && !this.closed) {
      const m = await this.request({ v: 2, type: 'lease-request' });
      if (m.type !== 'lease') {
        if (m.type === 'no-work') idle++;
        else errors++;
        await new Promise((r) => setTimeout(r, 2));
        continue;
      }
      const ack = await this.request(answer(m.shard as string, m.job as string));
      if (ack.type === 'ack') {
        const o = ack.outcome as string;
        acks[o] = (acks[o] ?? 0) + 1;
      } else errors++;
    }
    return { acks, errors, idle };
  }

  close(): void {
    this.ws.terminate();
  }
}
