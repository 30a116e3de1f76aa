// The hub's swarm and issued peer ids when several hubs share one database (issue 15): the same
// classes as for one hub (swarm.ts, allreduce-audit.ts), each told to the peer directory too
// (peer-directory.ts), so that holders on every live hub are named and a contribution signed by a
// peer of another hub is verified with the key that hub saw. What is only a hint stays per hub:
// partial holders and the cold-start fetcher (a blob fetched twice, never a blob missed).
import { toBase64Url } from '../protocol/control.ts';
import { type IssuedPeer, IssuedPeers, type IssuedPeersOptions } from './allreduce-audit.ts';
import { importVolunteerKey, type VolunteerKey } from './identity.ts';
import type { PeerDirectory } from './peer-directory.ts';
import { BlobSwarm, type BlobSwarmOptions } from './swarm.ts';

/** Peer keys imported from the directory, kept at most (least recently added out first). */
const KEYS_KEPT = 4096;

/**
 * BlobSwarm whose holders include the other hubs' (this hub's first: its own volunteers, whose
 * PeerServer is the one they signal through).
 *
 * @example
 * const swarm = new SharedSwarm(store.peers);
 * swarm.holders(modelSha, 16, asker); // peers here, then peers on the other live hubs
 */
export class SharedSwarm extends BlobSwarm {
  readonly #dir: PeerDirectory;

  constructor(dir: PeerDirectory, opts: BlobSwarmOptions = {}) {
    super(opts);
    this.#dir = dir;
  }

  override announce(holder: string, blobs: readonly string[]): number {
    const count = super.announce(holder, blobs);
    // Only what the swarm listed (it caps blobs per holder); a blob listed before is a no-op there.
    // The swarm is a hint (every blob also comes from the hub): a database that fails here costs
    // the other hubs' volunteers this holder, not this volunteer its answer.
    try {
      this.#dir.announce(
        holder,
        blobs.filter((b) => this.lists(holder, b)),
      );
    } catch {}
    return count;
  }

  override holders(blob: string, n: number, except?: string): string[] {
    const here = super.holders(blob, n, except);
    if (here.length >= n) return here;
    try {
      return [...here, ...this.#dir.holders(blob, n - here.length, except)];
    } catch {
      return here;
    }
  }
}

/**
 * IssuedPeers that writes each peer id it issues to the directory, with the volunteer's public
 * key, and finds a peer id issued by another hub there (its key imported once).
 */
export class SharedIssuedPeers extends IssuedPeers {
  readonly #dir: PeerDirectory;
  readonly #keys = new Map<string, IssuedPeer>();

  constructor(dir: PeerDirectory, opts: IssuedPeersOptions = {}) {
    super(opts);
    this.#dir = dir;
  }

  override issue(peer: string, volunteer: VolunteerKey): void {
    super.issue(peer, volunteer);
    // Written at once (signalling finds the peer's hub by it), the key once exported; posted in
    // order, so a release that follows lands after both.
    try {
      this.#dir.register(peer, volunteer.id);
    } catch {
      // Unknown to the other hubs (their volunteers cannot dial it, their audits flag it); this
      // hub's own volunteers and audits still have it.
      return;
    }
    crypto.subtle.exportKey('spki', volunteer.key).then(
      (spki) => this.#dir.register(peer, volunteer.id, toBase64Url(new Uint8Array(spki))),
      () => {
        // A key that cannot be exported (never: the hub imports them extractable) is verified here only.
      },
    );
  }

  override release(peer: string): void {
    super.release(peer);
    this.#dir.release(peer);
  }

  override async find(peer: string): Promise<IssuedPeer | undefined> {
    const here = this.get(peer);
    if (here) return here;
    const known = this.#keys.get(peer);
    if (known) return known;
    const p = this.#dir.lookup(peer);
    if (!p?.publicKey) return undefined;
    let key: VolunteerKey;
    try {
      key = await importVolunteerKey(p.publicKey);
    } catch {
      return undefined;
    }
    // The id is derived from the key: a row whose volunteer does not match it names nobody.
    if (key.id !== p.volunteer) return undefined;
    const found = { volunteer: key };
    this.#keys.set(peer, found);
    if (this.#keys.size > KEYS_KEPT) {
      const oldest = this.#keys.keys().next();
      if (!oldest.done) this.#keys.delete(oldest.value);
    }
    return found;
  }
}
