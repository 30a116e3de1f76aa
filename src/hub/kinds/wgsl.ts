// The `wgsl` kind on the hub: a researcher's list of shards (single dispatches or programs of
// passes); at submit every shard is checked against the shader's declarations and its uniforms'
// blobs, and the kernel is compiled — every pass's pipeline built — on the hub's own device when
// it has one, so a syntax error is refused with its line and column instead of failing on every
// volunteer.
import { at } from '../../core/at.ts';
import { HearthError } from '../../core/errors.ts';
import {
  specOutputs,
  type WgslHoneypot,
  type WgslManifest,
  type WgslShardSpec,
  type WgslWork,
} from '../../protocol/kinds/wgsl.ts';
import {
  checkProgramAgainstSource,
  layoutKey,
  passLayouts,
  planProgram,
  type WgslPassLayout,
} from '../../protocol/kinds/wgsl-plan.ts';
import { SHARD_LIMITS } from '../../protocol/shard.ts';
import type { HubKind, PlannedShard, SubmitEnv } from './kind.ts';
import { replicaValidation } from './replicas.ts';

function plan(m: WgslManifest): PlannedShard<WgslWork>[] {
  return [
    ...m.shards.map((spec) => ({ work: { kind: 'wgsl' as const, spec } })),
    ...(m.honeypots ?? []).map(({ expected, ...spec }) => ({
      work: { kind: 'wgsl' as const, spec: spec as WgslShardSpec },
      expected,
    })),
  ];
}

async function prepare(m: WgslManifest, env: SubmitEnv): Promise<WgslManifest> {
  const specs: [string, WgslShardSpec][] = [
    ...m.shards.map((s, i) => [`manifest.shards[${i}]`, s] as [string, WgslShardSpec]),
    ...(m.honeypots ?? []).map((s, i) => [`manifest.honeypots[${i}]`, s] as [string, WgslShardSpec]),
  ];
  // One build per distinct pipeline: a job of 10,000 shards of one kernel builds it once.
  const layouts = new Map<string, WgslPassLayout>();
  for (const [path, spec] of specs) {
    const uniformBytes = (b: { role: string; sha256?: string }) => {
      if (b.role !== 'uniform' || !b.sha256) return 0;
      const bytes = env.blob(b.sha256);
      const n = bytes?.byteLength ?? 0;
      if (bytes && (n === 0 || n % 4 !== 0 || n > SHARD_LIMITS.maxUniformBytes)) {
        throw new HearthError(
          'input/invalid',
          `${path}: uniform blob ${b.sha256} is ${n} bytes; a uniform must be a non-zero multiple of 4 bytes, at most ${SHARD_LIMITS.maxUniformBytes}.`,
          { details: { path, bytes: n } },
        );
      }
      return n;
    };
    const program = planProgram(spec, m.entryPoint ?? 'main', uniformBytes as never);
    checkProgramAgainstSource(m.source, program, path);
    for (const l of passLayouts(m.source, program)) layouts.set(layoutKey(l), l);
  }
  await env.checkWgsl?.(m.source, [...layouts.values()]);
  return m;
}

/** The `wgsl` kind on the hub (registered in ./index.ts). */
export const wgslHub: HubKind<WgslManifest, WgslWork> = {
  kind: 'wgsl',
  needsGpu: true,
  plan,
  prepare,
  checkOutputs(work, outputs) {
    for (const b of specOutputs(work.spec)) {
      const o = outputs.find((x) => x.name === b.name);
      if (!o || o.dtype !== b.dtype || o.shape.join(',') !== b.shape.join(',')) {
        throw new HearthError(
          'input/invalid',
          `result.outputs: expected output "${b.name}" as ${b.dtype}[${b.shape.join(', ')}].`,
          { details: { path: 'result.outputs', output: b.name } },
        );
      }
    }
  },
  async addHoneypots(m, n, env) {
    const honeypots: WgslHoneypot[] = [];
    for (const [k, i] of env.pick(m.shards.length, n).entries()) {
      const spec = at(m.shards, i, 'manifest.shards'); // pick gives indices in [0, count)
      const r = await env.run({ kind: 'wgsl', spec }, k);
      honeypots.push({ ...spec, expected: await env.expectedOf(r) });
    }
    return { ...m, honeypots: [...(m.honeypots ?? []), ...honeypots] };
  },
  validate: replicaValidation,
  jobWideErrors: new Set(['wgsl/compile']),
};
