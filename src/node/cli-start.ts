// `hearth start` (`npm start`): the demo of the whole system in one command (start.ts).
import { join, resolve } from 'node:path';
import { type Command, int, str, usage } from './cli-args.ts';
import { runStart } from './start.ts';
import type { AdapterChoice } from './volunteers.ts';

const ADAPTERS: readonly AdapterChoice[] = ['auto', 'swiftshader', 'native'];

/** `hearth-demo/2026-12-02T17-40-05`: a new folder per run, named by the time it started. */
export function defaultRunDir(now = new Date()): string {
  return join('hearth-demo', now.toISOString().slice(0, 19).replace(/:/g, '-'));
}

export const startCommand: Command = {
  name: 'start',
  summary: 'the whole system in one command: a hub, demo jobs, headless volunteers, a summary',
  help: `usage: hearth start [--volunteers N] [--small] [--keep] [--dir DIR] [--port N]
                   [--adapter auto|swiftshader|native] [--timeout SECONDS] [--no-chain]

Builds the pages when they are stale, starts a hub on 127.0.0.1 with a fresh SQLite file in
DIR, makes a researcher token, submits five jobs (an ONNX MLP, a WGSL heat-diffusion program, a
WGSL Mandelbrot picture, a WGSL saxpy, and tiny-lm: a small transformer trained by DiLoCo on the
repository's corpus), starts N headless Chromium volunteers (running this command is the
operator's yes on their behalf), shows each job's progress (tiny-lm's by round, with its latest
losses), then downloads the validated results, writes the picture (DIR/mandelbrot.png) and the
trained model (DIR/results/tiny-lm/: weights, loss.csv, loss.png, model.onnx) and prints a
summary: shards, agreeing replicas, throughput, the training loss at its first and last round,
a line of text sampled from the trained model, every volunteer's credit. It also starts a local chain (anvil)
with the HearthCredit contract: the hub signs vouchers and relays claims, each volunteer signs in
with a development wallet holding no ETH, and at the end each claims its credit as tokens; the
summary shows the balances. Exit 0 when every shard of every job was validated, the training
job's validation loss fell (and every balance equals the credit granted); 1 with the reason
otherwise.

  --volunteers N   headless volunteers (default 2, 1 to 16)
  --small          small jobs, a few shards each, 2 training rounds (a quick look; CI runs this)
  --keep           leave the hub and volunteers running after the summary and print the URLs
                   and the researcher token; Ctrl-C stops them
  --dir DIR        the run's folder, new or empty (default hearth-demo/<date and time>)
  --port N         the hub's port (default 0: a free one)
  --adapter A      the volunteers' WebGPU adapter (default auto: this machine's GPU where it
                   has a render node, else SwiftShader)
  --timeout S      give up after S seconds (default 300)
  --no-chain       no chain, no wallets: credit stays in the hub's ledger`,
  options: {
    volunteers: { type: 'string' },
    small: { type: 'boolean' },
    keep: { type: 'boolean' },
    dir: { type: 'string' },
    port: { type: 'string' },
    adapter: { type: 'string' },
    timeout: { type: 'string' },
    'no-chain': { type: 'boolean' },
  },
  positionals: 0,
  async run(flags) {
    const adapter = str(flags, 'adapter', 'auto') as AdapterChoice;
    if (!ADAPTERS.includes(adapter)) {
      throw usage(`--adapter: expected one of ${ADAPTERS.join(', ')}, got "${adapter}".`);
    }
    const abort = new AbortController();
    const onSignal = () => abort.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    const keep = flags.keep === true;
    try {
      const run = await runStart({
        dir: resolve(str(flags, 'dir') ?? defaultRunDir()),
        volunteers: int(flags, 'volunteers', 2, 1, 16),
        small: flags.small === true,
        keep,
        port: int(flags, 'port', 0, 0, 65535),
        adapter,
        timeoutMs: int(flags, 'timeout', 300, 10, 86_400) * 1000,
        tty: process.stdout.isTTY === true,
        signal: abort.signal,
        chain: flags['no-chain'] !== true,
      });
      if (keep) {
        process.stdout.write(
          [
            '',
            'still running (Ctrl-C stops the hub and the volunteers):',
            `  volunteer page   ${run.hub.url}/volunteer/`,
            `  console          ${run.hub.url}/console/  (sign in with the token below)`,
            ...(run.siteUrl ? [`  widget, embedded ${run.siteUrl}  (a site on another origin)`] : []),
            `  hub API          ${run.hub.url}/v1/`,
            `  researcher token ${run.token}`,
            `  e.g. HEARTH_HUB=${run.hub.url} HEARTH_TOKEN=<token> npm run hearth -- status ${run.summary.jobs[0]?.id ?? 'JOB'}`,
            '',
          ].join('\n'),
        );
        if (!abort.signal.aborted) await new Promise((r) => abort.signal.addEventListener('abort', r));
        await run.close();
      }
      return run.summary.ok ? 0 : 1;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
};
