// Handlers for swarm messages: announce, holders-request.
import { HearthError } from '../../core/errors.ts';
import { CONTROL_LIMITS } from '../../protocol/control.ts';
import type { Connection, HandlerContext, Handlers } from './handler.ts';

function swarmOf(c: Connection, ctx: HandlerContext, what: string) {
  if (!ctx.swarm || !c.peerId) {
    throw new HearthError('control/unsupported', `${what}: this hub keeps no blob swarm.`);
  }
  return { swarm: ctx.swarm, me: c.peerId };
}

export const SWARM_HANDLERS: Handlers<'announce' | 'holders-request'> = {
  announce: (m, c, ctx) => {
    const { swarm, me } = swarmOf(c, ctx, m.type);
    return { type: 'announced', count: swarm.announce(me, m.blobs) };
  },
  'holders-request': (m, c, ctx) => {
    const { swarm, me } = swarmOf(c, ctx, m.type);
    const peers = swarm.holders(m.sha256, CONTROL_LIMITS.maxHolders, me);
    const fetching = peers.length === 0 ? swarm.fetching(m.sha256, me) : 0;
    // Told of holders, the asker fetches from peers and serves what it has meanwhile; others
    // fetching it too are named beside the full holders.
    const partial =
      peers.length > 0 ? swarm.partialHolders(m.sha256, CONTROL_LIMITS.maxPartialHolders, me) : [];
    if (peers.length > 0) swarm.fetchingFromPeers(m.sha256, me);
    return {
      type: 'holders',
      sha256: m.sha256,
      peers,
      ...(fetching > 0 ? { fetching } : {}),
      ...(partial.length > 0 ? { partial } : {}),
    };
  },
};
