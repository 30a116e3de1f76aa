// Ids the hub makes for records (jobs, leases). Random, never counted: a count tells a stranger
// how busy the hub is and what the next id will be, and two hubs sharing one database (DESIGN.md:
// several hub processes on one PostgreSQL) would count to the same id. Order is never read from an
// id: the stores order jobs by creation (time, then arrival), leases by deadline.

/**
 * A random id: `prefix` then the 32 hex digits of a version-4 UUID (122 random bits — collisions
 * are not a concern). `crypto.randomUUID` (browsers and Node 20) draws from a pooled buffer: a
 * tenth of what `getRandomValues` per id costs, which a lease pays on the hub's hot path. Matches
 * the control plane's id pattern (`[A-Za-z0-9._:/@#-]`, at most 256) when the prefix does.
 *
 * @example
 * randomId('job-'); // 'job-3f2a9c…' (36 characters)
 */
export function randomId(prefix: string): string {
  return prefix + crypto.randomUUID().replaceAll('-', '');
}
