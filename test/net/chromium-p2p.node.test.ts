// The data plane between real Chromium tabs: each tab (its own browser context) runs a PeerNode
// against a real hub's PeerServer, with real WebRTC on loopback. A blob crosses with its hash
// checked; a tab that serves corrupted pieces is dropped with a typed error while an honest tab
// still delivers; a tab closed mid-transfer is caught by our heartbeat and the blob resumes from
// another tab at the first piece that had not arrived.
import { describe, expect, it } from 'vitest';
import { MAX_PIECE_BYTES } from '../../src/protocol/stream.ts';
import { type ChromiumPeer, chromiumHarness } from './chromium-peers.ts';
import { seededBytes, sha } from './node-peers.ts';

const MiB = 1024 * 1024;

const h = chromiumHarness();

type OpenOptions = Parameters<ChromiumPeer['open']>[0];

/**
 * One tab per options object, each registered at the hub's PeerServer with them. Typed as a
 * tuple of the arguments' length, so that destructuring the tabs needs no checks.
 */
async function tabs<O extends OpenOptions[]>(
  ...opts: O
): Promise<{ [K in keyof O]: [ChromiumPeer, string] }> {
  const out: [ChromiumPeer, string][] = [];
  for (const o of opts) {
    const p = await h.tab();
    out.push([p, await p.open(o)]);
  }
  return out as { [K in keyof O]: [ChromiumPeer, string] };
}

describe('blobs between Chromium tabs over the hub PeerServer', () => {
  it('moves a 6 MiB blob from one tab to another, hash checked', async () => {
    const size = 6 * MiB;
    const want = sha(seededBytes(size, 11));
    const [[holder, holderId], [getter]] = await tabs({}, {});
    expect(await holder.serve(11, size)).toBe(want);

    const got = await getter.fetch([holderId], want);
    if (!got.ok) throw new Error(`fetch failed: ${JSON.stringify(got.error)}`);
    expect(got.bytes).toBe(size);
    expect(got.sha256).toBe(want);
    expect(got.via).toBe('peer');
    expect(got.attempts).toEqual([
      { peer: holderId, fromPiece: 0, toPiece: Math.ceil(size / MAX_PIECE_BYTES) },
    ]);
  }, 180_000);

  it('drops a tab that serves corrupted pieces and still gets the blob from an honest tab', async () => {
    const size = 4 * MiB;
    const want = sha(seededBytes(size, 12));
    const [[liar, liarId], [honest, honestId], [getter]] = await tabs({ corrupt: true }, {}, {});
    await liar.serve(12, size);
    await honest.serve(12, size);
    // Both links open first, so the liar (first in line) surely sends some of the pieces.
    await getter.connect(liarId);
    await getter.connect(honestId);

    const got = await getter.fetch([liarId, honestId], want);
    if (!got.ok) throw new Error(`fetch failed: ${JSON.stringify(got.error)}`);
    expect(got.sha256).toBe(want);
    const [first, ...rest] = got.attempts;
    expect(first?.peer).toBe(liarId);
    // The HearthError code crossed page.evaluate intact.
    expect(['blob/corrupt', 'net/protocol']).toContain(first?.error?.code);
    expect(rest.at(-1)).toMatchObject({ peer: honestId });
    expect(rest.at(-1)?.error).toBeUndefined();
    // Dropped: its score fell, so it ranks behind every honest holder next time.
    expect(await getter.score(liarId)).toBeLessThan(0);
    expect(await getter.score(honestId)).toBeGreaterThanOrEqual(0);

    process.stdout.write(`lying tab dropped with ${first?.error?.code}: ${first?.error?.message}\n`);

    // Asked again with only the liar, the getter fails with a typed error, never a hang.
    const again = await getter.fetch([liarId], want);
    expect(again.ok).toBe(false);
    if (!again.ok) expect(['blob/missing', 'blob/corrupt', 'net/protocol']).toContain(again.error.code);
  }, 180_000);

  it('resumes from another tab when the serving tab is closed mid-transfer', async () => {
    const size = 5 * MiB;
    const piece = 64 * 1024;
    const count = size / piece;
    const want = sha(seededBytes(size, 13));
    // 1 MiB/s upload: the doomed tab needs ~5 s for the blob, so the close lands mid-blob.
    // Short enough to notice the closed tab quickly, long enough that a loaded CI machine does not drop a live one.
    const tuning = { pingIntervalMs: 250, idleTimeoutMs: 4000, stallTimeoutMs: 4000 };
    const [[doomed, doomedId], [backup, backupId], [getter]] = await tabs(
      { tuning: { uploadBytesPerSecond: MiB } },
      {},
      { tuning },
    );
    await doomed.serve(13, size);
    await backup.serve(13, size);

    // One holder at a time: the backup resumes at the first hole the closed tab left.
    const fetching = getter.fetch([doomedId, backupId], want, { pieceSize: piece, parallel: 1 });
    const deadline = Date.now() + 60_000;
    let at = { peer: '', done: 0, count: 0 };
    while (Date.now() < deadline) {
      at = await getter.progress();
      if (at.peer === doomedId && at.done >= 8) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(at.peer, 'the doomed tab never started serving').toBe(doomedId);
    await doomed.kill();

    const got = await fetching;
    if (!got.ok) throw new Error(`fetch failed: ${JSON.stringify(got.error)}`);
    expect(got.sha256).toBe(want);
    const [first, second] = got.attempts;
    expect(first?.peer).toBe(doomedId);
    // Our heartbeat (net/timeout) or the data channel/ICE closing (net/unreachable) noticed.
    expect(['net/timeout', 'net/unreachable']).toContain(first?.error?.code);
    expect(first!.toPiece).toBeGreaterThanOrEqual(at.done);
    expect(first!.toPiece).toBeLessThan(count);
    expect(second).toEqual({ peer: backupId, fromPiece: first!.toPiece, toPiece: count });
    process.stdout.write(`closed tab detected as ${first?.error?.code}: ${first?.error?.message}\n`);
  }, 180_000);
});
