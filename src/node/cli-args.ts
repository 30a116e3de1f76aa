// What every `hearth` subcommand shares: its description, strict flag parsing with node:util's
// parseArgs, and the two ways a command fails (bad usage → exit 2, any other HearthError → exit 1).

import { type ParseArgsConfig, parseArgs } from 'node:util';
import { HearthError } from '../core/errors.ts';

/**
 * A failure the user can fix by changing the command line: a HearthError ('cli/usage'), printed
 * with the usage, exit 2. Any other HearthError (hub unreachable, HTTP error, bad file) is printed
 * alone, exit 1.
 */
export const usage = (message: string): HearthError => new HearthError('cli/usage', message);

export type Options = NonNullable<ParseArgsConfig['options']>;

export interface Command {
  /** e.g. "token create" */
  readonly name: string;
  /** One line for the top-level usage. */
  readonly summary: string;
  /** The full --help text. */
  readonly help: string;
  readonly options: Options;
  /** Positional arguments it takes (0 = none). */
  readonly positionals: number;
  run(flags: Flags, positionals: string[]): Promise<number>;
}

export type Flags = Record<string, string | boolean | string[] | undefined>;

/** Parses a command's flags strictly; unknown flags and wrong arity are 'cli/usage' errors. */
export function parse(cmd: Command, argv: string[]): { flags: Flags; positionals: string[]; help: boolean } {
  let parsed: { values: Flags; positionals: string[] };
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...cmd.options, help: { type: 'boolean', short: 'h' } },
      allowPositionals: true,
      strict: true,
    }) as { values: Flags; positionals: string[] };
  } catch (e) {
    throw usage(e instanceof Error ? e.message : String(e));
  }
  const help = parsed.values.help === true;
  if (!help && parsed.positionals.length !== cmd.positionals) {
    throw usage(
      cmd.positionals === 0
        ? `hearth ${cmd.name} takes no arguments, got "${parsed.positionals.join(' ')}".`
        : `hearth ${cmd.name} takes ${cmd.positionals} argument(s), got ${parsed.positionals.length}.`,
    );
  }
  return { flags: parsed.values, positionals: parsed.positionals, help };
}

/**
 * Positional argument `i` (`name` as the usage writes it, e.g. JOB). `parse` already checked the
 * count against `Command.positionals`; a command that reads past it fails as 'cli/usage'.
 *
 * @example
 * const job = positional(args, 0, 'JOB');
 */
export function positional(args: readonly string[], i: number, name: string): string {
  const v = args[i];
  if (v === undefined) throw usage(`missing ${name}.`);
  return v;
}

/** A string flag's value, or `fallback`. */
export function str(flags: Flags, name: string, fallback: string): string;
export function str(flags: Flags, name: string): string | undefined;
export function str(flags: Flags, name: string, fallback?: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : fallback;
}

/** An integer flag in [min, max], or `fallback`; anything else is a 'cli/usage' error naming the flag. */
export function int(flags: Flags, name: string, fallback: number, min: number, max: number): number {
  const v = flags[name];
  if (typeof v !== 'string') return fallback;
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw usage(`--${name}: expected an integer from ${min} to ${max}, got "${v}".`);
  }
  return n;
}
