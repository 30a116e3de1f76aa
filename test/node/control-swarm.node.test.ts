// The hub's blob swarm over the real control plane: each authenticated connection gets a random
// PeerJS id in `welcome`; `announce` lists it as a holder, `holders-request` names holders (never
// the asker), a closed connection is forgotten, and with `requireIssuedIds` the PeerServer admits
// only ids the control plane issued to open connections.
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { BlobSwarm } from '../../src/hub/swarm.ts';
import { CONTROL_LIMITS, parseHubMessage } from '../../src/protocol/control.ts';
import { seededRng } from '../hub/fixtures.ts';
import { authenticated, ORIGIN, TestKey, until } from './control-helpers.ts';
import { sha, type TestHub, testHub } from './hub-helpers.ts';

let t: TestHub | undefined;
afterEach(async () => {
  await t?.dispose();
  t = undefined;
});

const A = sha('model a');
const B = sha('model b');

describe('blob swarm on the control plane', () => {
  it('lists holders by blob, never the asker, and forgets a closed connection', async () => {
    t = await testHub({ allowedOrigins: [ORIGIN] });
    const ws = `${t.hub.url.replace('http', 'ws')}/v1/volunteer`;
    const one = await authenticated(ws, await TestKey.create());
    const two = await authenticated(ws, await TestKey.create());
    expect(one.peerId).toMatch(/^h[0-9a-f]{32}$/);
    expect(two.peerId).toMatch(/^h[0-9a-f]{32}$/);
    expect(one.peerId).not.toBe(two.peerId);

    one.conn.send({ v: 2, type: 'announce', blobs: [A, B, A] });
    expect(await one.conn.msg()).toEqual({ v: 2, type: 'announced', count: 2 });
    two.conn.send({ v: 2, type: 'holders-request', sha256: A });
    expect(await two.conn.msg()).toEqual({ v: 2, type: 'holders', sha256: A, peers: [one.peerId] });
    one.conn.send({ v: 2, type: 'holders-request', sha256: A });
    expect(await one.conn.msg()).toEqual({ v: 2, type: 'holders', sha256: A, peers: [] });

    // Cold start: the first to ask for a blob nobody holds becomes its fetcher; the next asker is
    // told someone is fetching it (so it waits for that copy), until the fetcher announces it.
    const C = sha('model c');
    one.conn.send({ v: 2, type: 'holders-request', sha256: C });
    expect(await one.conn.msg()).toEqual({ v: 2, type: 'holders', sha256: C, peers: [] });
    two.conn.send({ v: 2, type: 'holders-request', sha256: C });
    expect(await two.conn.msg()).toEqual({ v: 2, type: 'holders', sha256: C, peers: [], fetching: 1 });
    one.conn.send({ v: 2, type: 'announce', blobs: [C] });
    expect(await one.conn.msg()).toEqual({ v: 2, type: 'announced', count: 3 });
    two.conn.send({ v: 2, type: 'holders-request', sha256: C });
    expect(await two.conn.msg()).toEqual({ v: 2, type: 'holders', sha256: C, peers: [one.peerId] });

    // Bad announcements are refused by the parser and list nothing.
    two.conn.send({ v: 2, type: 'announce', blobs: ['not-a-hash'] });
    expect(await two.conn.msg()).toMatchObject({
      type: 'error',
      code: 'input/invalid',
      message: /message\.blobs\[0\]/,
    });
    two.conn.send({ v: 2, type: 'announce', blobs: Array.from({ length: 257 }, (_, i) => sha(String(i))) });
    expect(await two.conn.msg()).toMatchObject({ type: 'error', code: 'input/invalid' });
    expect(t.hub.swarm?.size()).toEqual({ holders: 1, listings: 3 });

    await one.conn.close();
    await until(() => t!.hub.swarm!.size().holders === 0);
    two.conn.send({ v: 2, type: 'holders-request', sha256: B });
    expect(await two.conn.msg()).toEqual({ v: 2, type: 'holders', sha256: B, peers: [] });
    await two.conn.close();
  });

  it('names peers fetching a blob from peers as partial holders, until they announce it or leave', async () => {
    t = await testHub({ allowedOrigins: [ORIGIN] });
    const ws = `${t.hub.url.replace('http', 'ws')}/v1/volunteer`;
    const one = await authenticated(ws, await TestKey.create());
    const two = await authenticated(ws, await TestKey.create());
    const three = await authenticated(ws, await TestKey.create());
    const ask = async (v: typeof one, sha256: string) => {
      v.conn.send({ v: 2, type: 'holders-request', sha256 });
      return parseHubMessage(JSON.stringify(await v.conn.msg()));
    };
    one.conn.send({ v: 2, type: 'announce', blobs: [A] });
    await one.conn.msg();
    // two is told of one: from now on two is fetching A from peers, and named to others.
    expect(await ask(two, A)).toEqual({ v: 2, type: 'holders', sha256: A, peers: [one.peerId] });
    expect(await ask(three, A)).toEqual({
      v: 2,
      type: 'holders',
      sha256: A,
      peers: [one.peerId],
      partial: [two.peerId],
    });
    // Never the asker; a holder is never partial; an asker told of no holder is not fetching from peers.
    expect(await ask(two, A)).toEqual({
      v: 2,
      type: 'holders',
      sha256: A,
      peers: [one.peerId],
      partial: [three.peerId],
    });
    expect(await ask(one, A)).toEqual({ v: 2, type: 'holders', sha256: A, peers: [] });
    expect(await ask(two, B)).toEqual({ v: 2, type: 'holders', sha256: B, peers: [] });
    // two announces: a full holder now, no longer partial.
    two.conn.send({ v: 2, type: 'announce', blobs: [A] });
    await two.conn.msg();
    const m = await ask(three, A);
    expect(m.type === 'holders' && [...m.peers].sort()).toEqual([one.peerId, two.peerId].sort());
    expect(m.type === 'holders' && m.partial).toBeUndefined();
    // A partial holder that leaves is forgotten.
    expect(await ask(two, A)).toMatchObject({ partial: [three.peerId] });
    await three.conn.close();
    await until(() => t!.hub.swarm!.partialHolders(A, 16).length === 0);
    expect(await ask(two, A)).toEqual({ v: 2, type: 'holders', sha256: A, peers: [one.peerId] });
    for (const v of [one, two]) await v.conn.close();
  });

  it('checks the partial holders of a holders answer field by field', () => {
    const base = { v: 2, type: 'holders', sha256: A, peers: [`h${'1'.repeat(32)}`] };
    const ok = { ...base, partial: [`h${'2'.repeat(32)}`] };
    expect(parseHubMessage(JSON.stringify(ok))).toEqual(ok);
    expect(() => parseHubMessage(JSON.stringify({ ...base, partial: 'h1' }))).toThrow(/message\.partial/);
    expect(() => parseHubMessage(JSON.stringify({ ...base, partial: ['no spaces'] }))).toThrow(
      /message\.partial\[0\]/,
    );
    const many = Array.from({ length: CONTROL_LIMITS.maxPartialHolders + 1 }, (_, i) => `h${i}`);
    expect(() => parseHubMessage(JSON.stringify({ ...base, partial: many }))).toThrow(/message\.partial/);
  });

  it('refuses swarm messages before auth, and on a hub without a PeerServer', async () => {
    t = await testHub({ allowedOrigins: [ORIGIN], peer: false });
    const ws = `${t.hub.url.replace('http', 'ws')}/v1/volunteer`;
    const v = await authenticated(ws, await TestKey.create());
    expect(v.peerId).toBeUndefined();
    v.conn.send({ v: 2, type: 'announce', blobs: [A] });
    expect(await v.conn.msg()).toMatchObject({ type: 'error', code: 'control/unsupported' });
    await v.conn.close();
  });

  it('with requireIssuedIds, the PeerServer admits only ids issued to open connections', async () => {
    t = await testHub({ allowedOrigins: [ORIGIN], peer: { requireIssuedIds: true } });
    const ws = `${t.hub.url.replace('http', 'ws')}/v1/volunteer`;
    const v = await authenticated(ws, await TestKey.create());
    const open = (id: string) =>
      new Promise<number>((resolve) => {
        const s = new WebSocket(
          `${t!.hub.url.replace('http', 'ws')}/p2p/peerjs?key=hearth&id=${id}&token=t1`,
          {
            origin: ORIGIN,
          },
        );
        s.once('open', () => {
          s.close();
          resolve(101);
        });
        s.once('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          s.terminate();
        });
        s.once('error', () => resolve(0));
      });
    expect(await open(`h${'0'.repeat(32)}`)).toBe(403);
    expect(await open(v.peerId!)).toBe(101);
    await v.conn.close();
    await until(() => !t!.hub.controlPlane.isPeerId(v.peerId!));
    expect(await open(v.peerId!)).toBe(403);
  });
});

describe('BlobSwarm', () => {
  it('keeps a bounded, expiring list of partial holders per blob', () => {
    let now = 0;
    const s = new BlobSwarm({ fetchingForMs: 1000, now: () => now, maxPartialPerBlob: 3 });
    s.announce('h0', [A]);
    for (const h of ['h1', 'h2', 'h3', 'h4']) s.fetchingFromPeers(A, h);
    // The oldest went first: at most 3 per blob.
    expect(s.partialHolders(A, 16).sort()).toEqual(['h2', 'h3', 'h4']);
    expect(s.partialHolders(A, 2, 'h2')).toHaveLength(2);
    expect(s.partialHolders(A, 16, 'h2')).not.toContain('h2');
    s.fetchingFromPeers(A, 'h0'); // a full holder is never partial
    expect(s.partialHolders(A, 16)).not.toContain('h0');
    s.announce('h3', [A]);
    s.drop('h4');
    expect(s.partialHolders(A, 16)).toEqual(['h2']);
    now = 1500;
    expect(s.partialHolders(A, 16)).toEqual([]);
  });

  it('caps what one holder may announce and samples holders at random', () => {
    const s = new BlobSwarm({ maxBlobsPerHolder: 3, random: seededRng(1) });
    expect(s.announce('h1', [A, B, sha('c'), sha('d')])).toBe(3);
    expect(s.holders(sha('d'), 8)).toEqual([]);
    for (let i = 2; i <= 20; i++) s.announce(`h${i}`, [A]);
    const seen = new Set<string>();
    for (let k = 0; k < 50; k++) {
      const picked = s.holders(A, 4, 'h1');
      expect(picked).toHaveLength(4);
      expect(new Set(picked).size).toBe(4);
      expect(picked).not.toContain('h1');
      for (const p of picked) seen.add(p);
    }
    // Requesters are spread over the holders, not always sent to the same four.
    expect(seen.size).toBeGreaterThan(10);
    s.drop('h1');
    expect(s.holders(B, 8)).toEqual([]);
  });

  it('counts a cold blob’s first asker as fetching it, until it announces, leaves or times out', () => {
    let now = 0;
    const s = new BlobSwarm({ fetchingForMs: 1000, now: () => now });
    expect(s.fetching(A, 'h1')).toBe(0); // h1 becomes the fetcher
    expect(s.fetching(A, 'h2')).toBe(1);
    expect(s.fetching(A, 'h1')).toBe(0); // never counts itself
    now = 1500; // h1 took too long: h2 may fetch it itself (and becomes the fetcher)
    expect(s.fetching(A, 'h2')).toBe(0);
    expect(s.fetching(A, 'h3')).toBe(1);
    s.drop('h2');
    expect(s.fetching(A, 'h3')).toBe(0);
    s.announce('h3', [A]);
    expect(s.fetching(A, 'h4')).toBe(0); // held now: ask the holder, nobody is fetching
  });
});
