// What the models' forward/backward functions share with the Trainer.
import { HearthError } from '../core/errors.ts';
import type { GpuTensor } from '../gpu/tensor.ts';

/** A batch on the GPU: `rows` examples (transformer: tokens), their inputs and i32 targets [rows]. */
export interface GpuBatch {
  /** Transformer: token ids [rows] i32. MLP: features [rows, inputs] f32. */
  readonly inputs: GpuTensor;
  readonly targets: GpuTensor;
  readonly rows: number;
}

/** The per-row loss [rows] and the logits it came from [rows, classes]; gradients went into the map the caller passed. */
export interface ForwardBackward {
  readonly loss: GpuTensor;
  /** Kept in the caller's Temps: valid until it releases them. */
  readonly logits: GpuTensor;
}

/** Parameter tensors by layout name. */
export class Params {
  private readonly byName = new Map<string, GpuTensor>();
  set(name: string, t: GpuTensor): void {
    this.byName.set(name, t);
  }
  get(name: string): GpuTensor {
    const t = this.byName.get(name);
    if (!t)
      throw new HearthError('train/layout', `the model has no parameter "${name}".`, { details: { name } });
    return t;
  }
  values(): IterableIterator<GpuTensor> {
    return this.byName.values();
  }
}

/**
 * Tensors made while recording one step: they must outlive the recording (a pooled buffer given
 * back before submit could be handed out again within it), so they are released after submit.
 */
export class Temps {
  private readonly list: GpuTensor[] = [];
  keep<T extends GpuTensor>(t: T): T {
    this.list.push(t);
    return t;
  }
  releaseAll(): void {
    for (const t of this.list) t.release();
    this.list.length = 0;
  }
}
