// Where peers are when several hubs share one database (issue 15, past one hub). A hub's swarm
// (swarm.ts) and issued peer ids (allreduce-audit.ts) live in its memory; on a shared store the
// directory adds what the other hubs must see: every peer id a hub issued (to whom, on which hub),
// the blobs each open peer holds, which hubs are alive, and a way to hand a PeerJS signalling
// message to the hub a peer is connected to. One store keeps it (PostgresStore: pg-peers.ts);
// a store for one hub has none, and everything stays in memory as before.

/** A peer id as the directory knows it. */
export interface DirectoryPeer {
  /** The hub that issued it (the one whose PeerServer the peer connects to). */
  readonly hub: string;
  readonly volunteer: string;
  /** The volunteer's public key, SPKI base64url (undefined until the issuing hub wrote it). */
  readonly publicKey?: string;
  /** Whether its connection is still open. */
  readonly open: boolean;
}

/**
 * Peers of every hub on one database.
 *
 * @example
 * const dir = store.peers; // undefined on a store for one hub
 * await dir.start((message) => deliverHere(message));
 * dir.register(peerId, volunteerId);
 * dir.announce(peerId, [modelSha]);
 * dir.holders(modelSha, 16, asker); // open holders on the other live hubs
 */
export interface PeerDirectory {
  /** This hub's name among the hubs. */
  readonly hub: string;
  /**
   * Starts the heartbeat that keeps this hub alive in the others' eyes and hears signalling
   * messages other hubs relay to peers connected here.
   */
  start(onMessage: (message: string) => void): Promise<void>;
  /**
   * A peer id issued here, written before this returns (so any hub finds it once its volunteer
   * has it); `publicKey` may follow in a second call once exported, without a wait.
   */
  register(peer: string, volunteer: string, publicKey?: string): void;
  /** The connection that held `peer` closed: it holds nothing any more. */
  release(peer: string): void;
  /** Where `peer` was issued, or undefined (never issued, or forgotten an hour after it closed). */
  lookup(peer: string): DirectoryPeer | undefined;
  /** The hub that issued `peer` (remembered: a peer id never moves), or undefined. */
  hubOf(peer: string): string | undefined;
  /** `peer` (issued here) holds `blobs`: written before this returns. */
  announce(peer: string, blobs: readonly string[]): void;
  /** Up to `n` open holders of `blob` on the other live hubs, in random order, never `except`. */
  holders(blob: string, n: number, except?: string): string[];
  /**
   * Hands a signalling message to `hub` (which calls its `onMessage` with it). At most
   * MAX_RELAYED_BYTES; a lost one costs the sender a dial that times out and is tried again.
   */
  relay(hub: string, message: string): void;
  /** Stops the heartbeat and forgets this hub's peers (a graceful close). */
  close(): void;
}

/** The largest relayed signalling message: NOTIFY's payload limit is 8,000 bytes. */
export const MAX_RELAYED_BYTES = 7_900;
