// Validation by replicas (validation.ts decideReplicas), the rule of every kind whose shards are
// independent and whose results are compared with each other.
import type { ShardRecord } from '../store.ts';
import { type Candidate, type Decision, decideReplicas, type ReplicaRule } from '../validation.ts';

export function replicaValidation(
  _shard: ShardRecord,
  results: readonly Candidate[],
  rule: ReplicaRule,
): Decision {
  return decideReplicas(results, rule);
}
