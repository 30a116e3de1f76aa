// The hub's job kinds, one module each, registered once. Keyed by JobKind (protocol/kinds/), so a
// kind the protocol knows and the hub does not is a type error, not a runtime surprise.
import type { JobKind, KindTypes, Manifest, ShardWork } from '../../protocol/kinds/index.ts';
import type { HubKind } from './kind.ts';
import { onnxHub } from './onnx.ts';
import { trainHub } from './train.ts';
import { wgslHub } from './wgsl.ts';

export type HubKinds = { readonly [K in JobKind]: HubKind<KindTypes[K]['manifest'], KindTypes[K]['work']> };

export const HUB_KINDS: HubKinds = { onnx: onnxHub, wgsl: wgslHub, train: trainHub };

/** A kind's hub module for a manifest of that kind (the one cast of the correlated union). */
export function hubKindOf(kinds: HubKinds, kind: JobKind): HubKind<Manifest, ShardWork> {
  return kinds[kind] as unknown as HubKind<Manifest, ShardWork>;
}
