// A round member in its own process, for allreduce.node.test.ts to SIGKILL mid-round: a real
// death (no close frames, no SCTP shutdown), which only the links' heartbeats can detect.
// Usage: node scripts/run-ts.mjs test/net/allreduce-child.ts PORT ID ROUND ELEMENTS GROUP(comma-separated)
import { allReduceMean, allReduceProtocol } from '../../src/net/allreduce.ts';
import { nodeAt } from './node-peers.ts';

const [port, id, round, elements, group] = process.argv.slice(2);
if (
  port === undefined ||
  id === undefined ||
  round === undefined ||
  elements === undefined ||
  group === undefined
) {
  process.stderr.write('usage: allreduce-child.ts PORT ID ROUND ELEMENTS GROUP(comma-separated)\n');
  process.exit(2);
}
const node = await nodeAt(Number(port), {
  id,
  tuning: { pingIntervalMs: 500, idleTimeoutMs: 6000, stallTimeoutMs: 6000, ackTimeoutMs: 10_000 },
  protocols: [allReduceProtocol],
});
process.stdout.write(`ready ${node.id}\n`);
// Waits for "go" so that every member starts together; then reports each step as it starts.
process.stdin.once('data', () => {
  allReduceMean(node, {
    round,
    group: group.split(','),
    tensor: new Float32Array(Number(elements)).fill(1000),
    onStep: (p) => process.stdout.write(`step ${p.phase} ${p.step}\n`),
  }).then(
    () => process.stdout.write('done\n'),
    (e) => process.stdout.write(`failed ${String(e)}\n`),
  );
});
