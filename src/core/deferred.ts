// A promise with its resolve and reject in hand, for code that settles it from an event handler
// or a timer (streams, acknowledgements, group commits, ring steps).

export interface Deferred<T> {
  readonly promise: Promise<T>;
  /** Whether resolve or reject has been called. */
  readonly settled: boolean;
  resolve(v: T): void;
  reject(e: unknown): void;
}

/**
 * A new Deferred. A rejection nobody awaits is expected (a link that fails, a commit nobody
 * waits for, an aborted attempt), so it is never reported as unhandled; awaiting `promise` still
 * throws it.
 *
 * @example
 * const ack = deferred<boolean>();
 * conn.on('data', (m) => ack.resolve(m.ok));
 * await ack.promise;
 */
export function deferred<T>(): Deferred<T> {
  let res!: (v: T) => void;
  let rej!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    res = a;
    rej = b;
  });
  promise.catch(() => {});
  let settled = false;
  return {
    promise,
    get settled() {
      return settled;
    },
    resolve(v) {
      settled = true;
      res(v);
    },
    reject(e) {
      settled = true;
      rej(e);
    },
  };
}
