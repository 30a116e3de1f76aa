// A holder killed mid-transfer (SIGKILL of its process: no close event reaches anyone) is
// detected by the link's own heartbeat, not by PeerJS, and the blob resumes from another holder
// at the first piece that had not arrived; the assembled bytes are verified.
import { type ChildProcess, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PeerNode } from '../../src/net/peer-node.ts';
import { type TestHub, testHub } from '../node/hub-helpers.ts';
import { mapSource, nodeAt, seededBytes, sha } from './node-peers.ts';

const SIZE = 5 * 1024 * 1024;
const SEED = 42;
const PIECE = 64 * 1024;

let th: TestHub;
let child: ChildProcess | undefined;
const nodes: PeerNode[] = [];

/** Starts the child holder and waits for its "ready" line (bounded: a hung start fails the test). */
function startChild(port: number, id: string, rate: number): Promise<ChildProcess> {
  const c = spawn(
    process.execPath,
    [
      'scripts/run-ts.mjs',
      'test/net/peer-child.ts',
      String(port),
      id,
      String(SIZE),
      String(SEED),
      String(rate),
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`child not ready after 60 s: ${out}`)), 60_000);
    const on = (d: Buffer) => {
      out += d;
      if (out.includes(`ready ${id}`)) {
        clearTimeout(timer);
        resolve(c);
      }
    };
    c.stdout.on('data', on);
    c.stderr.on('data', (d: Buffer) => (out += d));
    c.once('exit', (code) => reject(new Error(`child exited ${code}: ${out}`)));
  });
}

beforeAll(async () => {
  th = await testHub();
});
afterAll(async () => {
  child?.kill('SIGKILL');
  for (const n of nodes) n.close();
  await th?.dispose();
});

describe('resume after a holder dies', () => {
  it('detects a SIGKILLed holder by heartbeat and resumes from another at the next piece', async () => {
    const blob = seededBytes(SIZE, SEED);
    const port = th.hub.port;
    // 1 MiB/s: the 5 MiB transfer takes ~5 s, so the kill surely lands mid-blob.
    child = await startChild(port, 'doomed-holder', 1024 * 1024);
    const backup = await nodeAt(port, { source: mapSource(blob) });
    const tuning = { pingIntervalMs: 250, idleTimeoutMs: 4000, stallTimeoutMs: 4000 };
    const getter = await nodeAt(port, { tuning });
    nodes.push(backup, getter);

    let killedAt = -1;
    const got = await getter.fetchBlob(['doomed-holder', backup.id], sha(blob), {
      pieceSize: PIECE,
      // One holder at a time: the backup resumes at the first hole the dead holder left.
      parallel: 1,
      onProgress: (peer, done) => {
        if (peer === 'doomed-holder' && done >= 8 && killedAt < 0) {
          killedAt = done;
          child?.kill('SIGKILL');
        }
      },
    });

    expect(sha(got.bytes)).toBe(sha(blob));
    expect(killedAt, JSON.stringify(got.attempts)).toBe(8);
    const [first, second] = got.attempts;
    if (!first) throw new Error('the fetch made no attempts');
    expect(first.peer).toBe('doomed-holder');
    // Our heartbeat (or ICE leaving 'connected') noticed; PeerJS itself fires nothing.
    expect(['net/timeout', 'net/unreachable']).toContain(first.error?.code);
    // Pieces that were already in flight when the kill landed still count.
    expect(first.toPiece).toBeGreaterThanOrEqual(8);
    expect(first.toPiece).toBeLessThan(SIZE / PIECE);
    expect(second).toEqual({
      peer: backup.id,
      fromPiece: first.toPiece,
      toPiece: SIZE / PIECE,
      pieces: SIZE / PIECE - first.toPiece,
    });
    expect(first.pieces).toBe(first.toPiece);
    process.stdout.write(`holder death detected as ${first.error?.code}: ${first.error?.message}\n`);
  }, 120_000);
});
