// Validation decisions as pure functions over loaded records: given the results a shard has,
// what happens to it. No store, no clock: the Scheduler loads the records, asks, and applies the
// answer in its transaction; tests ask directly (test/hub/validation.node.test.ts).
//
// The rules, as BOINC's validator does them:
// - Replicas: the largest group of results that agree (agreement.ts) wins once it has `quorum`
//   members; its first member is the canonical result. Disagreement asks for more replicas, up to
//   `maxReplicas`; past that nobody can be shown right and the shard fails, crediting nobody.
// - Errors: a volunteer that could not run a shard reports its error. Errors that the same
//   inputs would give on any device (a WGSL compile error, a model onnxruntime rejects) are
//   recorded like results; once `errorQuorum` distinct volunteers report the same one the shard
//   fails with it, so the researcher hears of it instead of the shard being retried forever.
//   Device-specific errors (lost device, out of memory, a limit, a timeout) are not recorded:
//   the shard simply goes to someone else.
import type { HearthErrorCode } from '../core/errors.ts';
import type { ExpectedOutput, Tolerance } from '../protocol/manifest.ts';
import type { OutputTensor } from '../protocol/shard.ts';
import { resultsAgree, tensorsAgree } from './agreement.ts';

/** An error a volunteer reported for a shard, as the hub keeps it. */
export interface ShardError {
  readonly code: HearthErrorCode;
  readonly message: string;
  readonly details?: Readonly<Record<string, unknown>>;
}

/**
 * Error codes that the same shard gives on every device: the researcher's to fix. Anything else a
 * volunteer reports (device lost, out of memory, a device limit, a timeout, a crash) says
 * something about that volunteer's machine, not the job.
 */
export const DETERMINISTIC_ERRORS: ReadonlySet<HearthErrorCode> = new Set<HearthErrorCode>([
  'wgsl/compile',
  'wgsl/manifest',
  'wgsl/pipeline',
  'onnx/model',
  'onnx/unsupported',
  'onnx/run',
  'input/invalid',
  'tensor/shape',
  'tensor/dtype',
  'train/config',
  'train/data',
  'train/diverged',
]);

/** One result as validation sees it: computed outputs, or the error a volunteer reported. */
export interface Candidate {
  readonly id: string;
  readonly volunteer: string;
  readonly outputs: readonly OutputTensor[];
  readonly error?: ShardError;
}

export interface ReplicaRule {
  /** Agreeing results needed. */
  readonly quorum: number;
  /** Most results (errors included) gathered before the shard is given up. */
  readonly maxReplicas: number;
  readonly tolerance: Tolerance;
  /** Results plus live leases the shard wants now. */
  readonly wanted: number;
  /** Distinct volunteers reporting the same deterministic error that fail the shard with it. */
  readonly errorQuorum: number;
}

export type Decision =
  /** `agreeing` are credited, `outvoted` judged invalid; `canonical` is the shard's result. */
  | {
      readonly kind: 'validated';
      readonly canonical: string;
      readonly agreeing: readonly string[];
      readonly outvoted: readonly string[];
    }
  /** Nobody can be shown right (or every attempt failed): nobody is credited or blamed. */
  | { readonly kind: 'failed'; readonly error?: ShardError }
  /** Wait for more results; the shard should now want this many. */
  | { readonly kind: 'wait'; readonly wanted: number };

/** Errors are the same error when their code and message are, shard ids aside. */
export function errorSignature(e: ShardError): string {
  return `${e.code}\u0000${e.message.replace(/\b[A-Za-z0-9._:-]+\/(hp)?\d+\b/g, '<shard>')}`;
}

/**
 * What the results a shard has so far decide.
 *
 * @example
 * decideReplicas([a, b], { quorum: 2, maxReplicas: 5, tolerance: 'exact', wanted: 2, errorQuorum: 2 });
 * // { kind: 'validated', canonical: a.id, agreeing: [a.id, b.id], outvoted: [] } when a and b agree
 */
export function decideReplicas(results: readonly Candidate[], rule: ReplicaRule): Decision {
  const computed = results.filter((r) => r.error === undefined);
  let best: Candidate[] = [];
  let canonical: Candidate | undefined;
  for (const r of computed) {
    const group = computed.filter((x) => resultsAgree(r.outputs, x.outputs, rule.tolerance));
    if (group.length > best.length) {
      best = group;
      canonical = r;
    }
  }
  if (canonical && best.length >= rule.quorum) {
    return {
      kind: 'validated',
      canonical: canonical.id,
      agreeing: best.map((r) => r.id),
      outvoted: computed.filter((r) => !best.includes(r)).map((r) => r.id),
    };
  }
  const errors = commonestError(results);
  // Errors fail the shard early only while nobody computed it: a model that fails on some
  // devices' backend and runs on others is not the researcher's error.
  if (errors && errors.count >= rule.errorQuorum && computed.length === 0) {
    return { kind: 'failed', error: errors.error };
  }
  const need = rule.quorum - best.length;
  if (results.length + need > rule.maxReplicas) {
    // Out of attempts. Errors that outnumber the largest agreeing group are the likelier story.
    return errors && errors.count >= best.length
      ? { kind: 'failed', error: errors.error }
      : { kind: 'failed' };
  }
  return { kind: 'wait', wanted: Math.max(rule.wanted, results.length + need) };
}

/** The error reported by the most volunteers, with how many (first reported wins a tie). */
export function commonestError(
  results: readonly Candidate[],
): { error: ShardError; count: number } | undefined {
  const counts = new Map<string, { error: ShardError; count: number }>();
  for (const r of results) {
    if (!r.error) continue;
    const k = errorSignature(r.error);
    const c = counts.get(k);
    if (c) c.count++;
    else counts.set(k, { error: r.error, count: 1 });
  }
  let top: { error: ShardError; count: number } | undefined;
  for (const c of counts.values()) if (!top || c.count > top.count) top = c;
  return top;
}

/**
 * Whether a honeypot's answer is right: every expected output present and agreeing. Tolerance
 * jobs compare values when the expected bytes are at hand (`bytesOf`), else only bit-exact hashes.
 *
 * @example
 * honeypotPasses(result.outputs, shard.expected, manifest.tolerance, (sha) => blobs.read(sha));
 */
export function honeypotPasses(
  outputs: readonly OutputTensor[],
  expected: readonly ExpectedOutput[],
  tolerance: Tolerance,
  bytesOf: (sha256: string) => ArrayBuffer | undefined,
): boolean {
  for (const e of expected) {
    const o = outputs.find((x) => x.name === e.name);
    if (!o) return false;
    const bytes = tolerance === 'exact' ? undefined : bytesOf(e.sha256);
    // Without the expected bytes only a bit-exact comparison is possible.
    const tol = bytes ? tolerance : 'exact';
    if (!tensorsAgree(o, { ...e, data: bytes ?? new ArrayBuffer(0) }, tol)) return false;
  }
  return true;
}
