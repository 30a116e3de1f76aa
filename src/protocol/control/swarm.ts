// Swarm messages: who holds which blob. announce → announced; holders-request → holders.
import { array, integer, object, sha256 } from '../schema.ts';
import { CONTROL_LIMITS, peerId } from './wire.ts';

/** Requests a client sends in this concern, by type. */
export const SWARM_REQUESTS = {
  /** "This connection's peer holds these verified blobs": the hub lists it as a source for them. */
  announce: object({ blobs: array(sha256, CONTROL_LIMITS.maxAnnounce) }),
  /** "Who else holds this blob?" */
  'holders-request': object({ sha256 }),
};

/** What the hub sends in this concern, by type. */
export const SWARM_HUB = {
  /** `count`: blobs this connection is now listed for, in all. */
  announced: object({ count: integer(0, Number.MAX_SAFE_INTEGER) }),
  /**
   * `peers`: peer ids of connected volunteers that announced the blob, in random order (never the
   * asker).
   * `fetching`: with no peers, how many other volunteers are fetching the blob from the hub right
   * now. More than 0 means "ask again shortly": a copy is about to be in the swarm.
   * `partial`: with peers, other volunteers fetching the blob from peers right now (asked, told of
   * holders, not announced yet), in random order, never the asker. Each serves the pieces it has
   * checked against the hub's piece list; ask them beside the full holders.
   */
  holders: object(
    { sha256, peers: array(peerId, CONTROL_LIMITS.maxHolders) },
    {
      fetching: integer(0, Number.MAX_SAFE_INTEGER),
      partial: array(peerId, CONTROL_LIMITS.maxPartialHolders),
    },
  ),
};

/** Which hub messages answer each request. */
export const SWARM_REPLIES = {
  announce: ['announced'],
  'holders-request': ['holders'],
} as const;
