// Ids the hub makes for records (jobs, leases). Random, never counted: a count tells a stranger
// how busy the hub is and what the next id will be, and two hubs sharing one database (DESIGN.md:
// several hub processes on one PostgreSQL) would count to the same id. Order is never read from an
// id: the stores order jobs by creation (time, then arrival), leases by deadline.
import { toHex } from './hash.ts';

/** Random bits in an id: 128, as 32 lowercase hex digits — collisions are not a concern. */
export const ID_RANDOM_BYTES = 16;

/**
 * A random id, `prefix` then 32 hex digits (WebCrypto's getRandomValues: browsers and Node 20).
 * Matches the control plane's id pattern (`[A-Za-z0-9._:/@#-]`, at most 256) when the prefix does.
 *
 * @example
 * randomId('job-'); // 'job-3f2a9c…' (36 characters)
 */
export function randomId(prefix: string): string {
  return prefix + toHex(crypto.getRandomValues(new Uint8Array(ID_RANDOM_BYTES)));
}
