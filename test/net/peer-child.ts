// A holder in its own process, for peer-resume.node.test.ts to SIGKILL mid-transfer: a real
// death (no close frames, no SCTP shutdown), not a polite Peer.destroy().
// Usage: node scripts/run-ts.mjs test/net/peer-child.ts PORT ID BYTES SEED UPLOAD_BYTES_PER_S
import { mapSource, nodeAt, seededBytes } from './node-peers.ts';

const [port, id, size, seed, rate] = process.argv.slice(2);
if (
  port === undefined ||
  id === undefined ||
  size === undefined ||
  seed === undefined ||
  rate === undefined
) {
  process.stderr.write('usage: peer-child.ts PORT ID BYTES SEED UPLOAD_BYTES_PER_S\n');
  process.exit(2);
}
const blob = seededBytes(Number(size), Number(seed));
const node = await nodeAt(Number(port), {
  id,
  source: mapSource(blob),
  tuning: { uploadBytesPerSecond: Number(rate) },
});
process.stdout.write(`ready ${node.id}\n`);
// Stays up until killed; the parent's SIGKILL is the point.
setInterval(() => {}, 60_000);
