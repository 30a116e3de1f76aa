// `hearth …` as a user runs it: a child process (node scripts/run-ts.mjs src/node/cli.ts …), so
// an in-process hub keeps answering while it runs.
import { spawn } from 'node:child_process';

export const CLI = ['scripts/run-ts.mjs', 'src/node/cli.ts'];

export interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `hearth …` to completion without blocking this process (an in-process hub must answer). */
export function hearth(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI, ...args], {
      // No HEARTH_* from the caller's shell leaks into a test.
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
