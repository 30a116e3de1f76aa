// Shared by the cross-hub swarm test and its child hub: the peer directory's timing, short so a
// killed hub's peers leave the holders within seconds.
import type { PgPeersOptions } from '../../src/hub/pg-peers.ts';

export const XHUB_PEERS = {
  heartbeatMs: 250,
  leaseMs: 1500,
  holdersCacheMs: 500,
} as const satisfies PgPeersOptions;

/**
 * How long after a SIGKILL its peers may still be named: the lease (the last heartbeat may have
 * been just before the kill), the holders cache, and a heartbeat's slack. The test adds time for
 * its own polling on a loaded machine.
 */
export const KILLED_HOLDERS_GONE_MS = XHUB_PEERS.leaseMs + XHUB_PEERS.holdersCacheMs + XHUB_PEERS.heartbeatMs;
