import { type TransferHandler, transferHandlers } from 'comlink';
import { HearthError } from '../core/errors.ts';

type Thrown = { value: unknown };
type Wire = { hearth: true; value: ReturnType<HearthError['toJSON']> } | { hearth?: false; base: unknown };

let installed = false;

/**
 * Makes a HearthError thrown in the worker arrive on the page as a HearthError (code, message,
 * details), not as a plain Error or a string. Call once on each side of the boundary.
 */
export function installHearthErrorTransfer(): void {
  if (installed) return;
  const base = transferHandlers.get('throw') as TransferHandler<Thrown, unknown>;
  const handler: TransferHandler<Thrown, Wire> = {
    canHandle: (v): v is Thrown => base.canHandle(v),
    serialize(thrown) {
      if (thrown.value instanceof HearthError) return [{ hearth: true, value: thrown.value.toJSON() }, []];
      const [wire, transfers] = base.serialize(thrown);
      return [{ hearth: false, base: wire }, transfers];
    },
    deserialize(wire) {
      if (wire.hearth) throw HearthError.fromJSON(wire.value);
      return base.deserialize(wire.base) as Thrown;
    },
  };
  transferHandlers.set('throw', handler as TransferHandler<unknown, unknown>);
  installed = true;
}
