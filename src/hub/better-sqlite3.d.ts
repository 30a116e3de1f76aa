// The few better-sqlite3 calls the hub makes, typed here rather than adding @types/better-sqlite3
// as another dependency.
declare module 'better-sqlite3' {
  interface RunResult {
    changes: number;
    lastInsertRowid: number | bigint;
  }
  export interface SqliteStatement {
    run(...params: unknown[]): RunResult;
    get(...params: unknown[]): unknown;
    all(...params: unknown[]): unknown[];
    /** Integers come back as bigint (all of them, exact past 2⁵³) rather than number. */
    safeIntegers(on?: boolean): SqliteStatement;
  }
  export interface SqliteDatabase {
    prepare(sql: string): SqliteStatement;
    exec(sql: string): SqliteDatabase;
    /** A user function SQL can call (a migration's conversions). */
    function(
      name: string,
      options: { deterministic?: boolean },
      fn: (...args: never[]) => unknown,
    ): SqliteDatabase;
    pragma(source: string, options?: { simple?: boolean }): unknown;
    /** The function runs in BEGIN (deferred); `.immediate`, `.exclusive` run it in those modes. */
    transaction<F extends (...args: never[]) => unknown>(fn: F): F & { immediate: F; exclusive: F };
    close(): SqliteDatabase;
    readonly inTransaction: boolean;
  }
  interface DatabaseConstructor {
    new (filename: string, options?: { readonly?: boolean; fileMustExist?: boolean }): SqliteDatabase;
  }
  const Database: DatabaseConstructor;
  export default Database;
}
