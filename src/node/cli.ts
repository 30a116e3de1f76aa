#!/usr/bin/env -S node --import tsx
// `hearth`: the hub operator's and the researcher's command line.
//
//   hearth hub [--db PATH | --store URL] …  run a hub until SIGINT/SIGTERM
//   hearth token create|list|revoke …       researcher tokens, straight on the hub's store
//   hearth submit | status | results | cancel …  a researcher's client of a running hub
//   hearth volunteer --count N              headless Chromium volunteers against a hub
//   hearth example --out DIR                an example ONNX job and WGSL job to submit
//   hearth start                            the demo: hub, jobs, volunteers, summary (npm start)
//   hearth selftest [--verbose]             every kernel on this machine's adapter vs float64
//   hearth chain [--dir DIR]                a local chain with the credit contract, until Ctrl-C
//
// Exit codes: 0 done, 1 the work failed (hub unreachable, HTTP error, bad file), 2 bad usage.
// Run from a checkout with `npm run hearth -- <command> …`.
import { dirname, join, resolve } from 'node:path';
import { HearthError, isHearthError } from '../core/errors.ts';
import { PostgresStore } from '../hub/postgres-store.ts';
import { SqliteStore } from '../hub/sqlite-store.ts';
import type { HubStore } from '../hub/store.ts';
import { createToken, listTokens, revokeToken } from '../hub/tokens.ts';
import { formatCredit, parseCredits } from '../protocol/credit.ts';
import { type Command, type Flags, int, parse, str, usage } from './cli-args.ts';
import { chainCommand } from './cli-chain.ts';
import { clientCommands, DEFAULT_HUB } from './cli-client.ts';
import { exampleCommand } from './cli-example.ts';
import { sampleCommand } from './cli-sample.ts';
import { selftestCommand } from './cli-selftest.ts';
import { startCommand } from './cli-start.ts';
import { volunteerCommand } from './cli-volunteer.ts';
import { WALLET_FLAG_OPTIONS, WALLET_FLAGS_HELP, walletOptions } from './cli-wallet.ts';
import { startHub } from './hub-server.ts';

const DEFAULT_DB = 'hearth.db';
const DEFAULT_PORT = Number(new URL(DEFAULT_HUB).port);
const MiB = 2 ** 20;

/** `--store URL`: a PostgreSQL URL, checked before anything opens it. */
function storeUrl(flags: Flags): string | undefined {
  const url = str(flags, 'store');
  if (url === undefined) return undefined;
  if (str(flags, 'db') !== undefined)
    throw usage('--db and --store: give one (a SQLite file or a PostgreSQL URL).');
  if (!URL.canParse(url) || !/^postgres(ql)?:$/.test(new URL(url).protocol)) {
    throw usage(
      `--store: expected a PostgreSQL URL like postgres://hearth@127.0.0.1:5432/hearth, got "${url}".`,
    );
  }
  return url;
}

const hub: Command = {
  name: 'hub',
  summary: 'run a hub: the researchers\u2019 HTTP API and the volunteers\u2019 WebSocket',
  help: `usage: hearth hub [--db PATH | --store URL] [--port N] [--host H] [--blobs DIR] [--max-blob-bytes N]
                  [--origin URL ...] [--pages DIR] [--chain-rpc URL --credit-contract ADDR
                  --signer-key-file FILE [--relayer-key-file FILE]] [--embed-share PCT]

Runs a hub until SIGINT or SIGTERM, then closes it cleanly. Prints "listening on URL".
The admin token (for managing tokens over HTTP) is read from $HEARTH_ADMIN_TOKEN; without it
there is no admin.

  --db PATH             the SQLite file, created when absent (default: ${DEFAULT_DB})
  --store URL           a PostgreSQL database instead (postgres://USER[:PASSWORD]@HOST:PORT/DB), which
                        several hubs may share: run each with the same --store and the same --blobs
                        folder (a shared file system); the schema is created on first use
  --port N              0 picks a free port (default: ${DEFAULT_PORT})
  --host H              address to bind (default: 127.0.0.1, loopback only)
  --blobs DIR           blob folder (default: "blobs" beside the SQLite file; with --store, ./blobs)
  --max-blob-bytes N    largest blob an upload may carry (default: ${256 * MiB})
  --origin URL          a page origin allowed to call the hub from a browser; repeatable
  --pages DIR           folder served at every path outside /v1/ and /p2p (default: dist/ of
                        this checkout, made by \`npm run build\`)
${WALLET_FLAGS_HELP}

The same port also serves PeerJS signalling at /p2p (key "hearth").`,
  options: {
    db: { type: 'string' },
    store: { type: 'string' },
    port: { type: 'string' },
    host: { type: 'string' },
    blobs: { type: 'string' },
    'max-blob-bytes': { type: 'string' },
    origin: { type: 'string', multiple: true },
    pages: { type: 'string' },
    ...WALLET_FLAG_OPTIONS,
  },
  positionals: 0,
  async run(flags) {
    const wallet = await walletOptions(flags);
    const url = storeUrl(flags);
    const dbPath = resolve(str(flags, 'db', DEFAULT_DB));
    const pages = str(flags, 'pages');
    const origins = (flags.origin as string[] | undefined) ?? [];
    for (const o of origins) {
      if (o === '*' || !URL.canParse(o) || new URL(o).origin !== o) {
        throw usage(`--origin: expected an exact origin like https://example.org, got "${o}".`);
      }
    }
    const h = await startHub({
      ...(url === undefined ? { dbPath } : { store: new PostgresStore(url) }),
      blobDir: resolve(str(flags, 'blobs', url === undefined ? join(dirname(dbPath), 'blobs') : 'blobs')),
      port: int(flags, 'port', DEFAULT_PORT, 0, 65535),
      host: str(flags, 'host', '127.0.0.1'),
      maxBlobBytes: int(flags, 'max-blob-bytes', 256 * MiB, 1, Number.MAX_SAFE_INTEGER),
      allowedOrigins: origins,
      adminToken: process.env.HEARTH_ADMIN_TOKEN || undefined,
      ...(pages === undefined ? {} : { pagesDir: resolve(pages) }),
      ...wallet,
    });
    process.stdout.write(`listening on ${h.url}\n`);
    if (wallet.wallet) {
      process.stdout.write(
        `paying credit as tokens: contract ${wallet.wallet.contract} on chain ${wallet.wallet.chainId}${wallet.wallet.relayer ? ', relaying claims' : ''}\n`,
      );
    }
    await new Promise<void>((done) => {
      let stopping = false;
      const onSignal = (signal: NodeJS.Signals) => {
        // A second signal while closing means "now".
        if (stopping) process.exit(signal === 'SIGINT' ? 130 : 143);
        stopping = true;
        process.stderr.write(`${signal}: closing the hub\n`);
        h.close().then(done, (e: unknown) => {
          process.stderr.write(`hearth hub: closing failed: ${String(e)}\n`);
          process.exit(1);
        });
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    process.stdout.write('hub closed\n');
    return 0;
  },
};

const TOKEN_HELP = `usage: hearth token create --name NAME [--budget CREDITS] [--db PATH | --store URL]
       hearth token list [--db PATH | --store URL]
       hearth token revoke --name NAME [--db PATH | --store URL]

Researcher tokens, read and written directly in the hub's store (the hub may be running).
create prints the secret on stdout: it is shown this once, the hub keeps only its hash.

  --db PATH      the hub's SQLite file (default: ${DEFAULT_DB})
  --store URL    the hubs' PostgreSQL database instead (postgres://USER@HOST:PORT/DB)
  --name NAME    1 to 64 characters of A-Z a-z 0-9 . _ -
  --budget C     the most credit this token's jobs may plan to pay, in credits (e.g. 1000);
                 a job that would exceed what is left is refused at submit. Without it: no limit.`;

/** Opens the store for one operation and always closes it. */
function withStore<T>(flags: Flags, f: (s: HubStore) => T): T {
  const url = storeUrl(flags);
  const store: HubStore =
    url === undefined ? new SqliteStore(resolve(str(flags, 'db', DEFAULT_DB))) : new PostgresStore(url);
  try {
    return f(store);
  } finally {
    store.close();
  }
}

function needName(flags: Flags): string {
  const name = str(flags, 'name');
  if (name === undefined) throw usage('--name NAME is required.');
  return name;
}

const tokenCreate: Command = {
  name: 'token create',
  summary: 'make a researcher token and print its secret (once)',
  help: TOKEN_HELP,
  options: {
    db: { type: 'string' },
    store: { type: 'string' },
    name: { type: 'string' },
    budget: { type: 'string' },
  },
  positionals: 0,
  async run(flags) {
    const name = needName(flags);
    const b = str(flags, 'budget');
    const budget = b === undefined ? undefined : parseCredits(b, '--budget');
    const { token } = withStore(flags, (s) => {
      return createToken(s, name, Date.now(), budget);
    });
    process.stderr.write(
      `token "${name}" created (${budget === undefined ? 'no credit budget: its jobs may pay any credit' : `budget ${formatCredit(budget)} credits`}); its secret is shown this once:\n`,
    );
    process.stdout.write(`${token}\n`);
    return 0;
  },
};

const tokenList: Command = {
  name: 'token list',
  summary: 'list tokens: name, created, revoked',
  help: TOKEN_HELP,
  options: { db: { type: 'string' }, store: { type: 'string' } },
  positionals: 0,
  async run(flags) {
    const tokens = withStore(flags, listTokens);
    if (tokens.length === 0) process.stderr.write('no tokens yet (hearth token create --name NAME)\n');
    const w = Math.max(4, ...tokens.map((t) => t.name.length));
    for (const t of tokens) {
      const state = t.revokedAt === undefined ? 'active' : `revoked ${new Date(t.revokedAt).toISOString()}`;
      const budget = t.budget === undefined ? 'no budget' : `budget ${formatCredit(BigInt(t.budget))}`;
      process.stdout.write(
        `${t.name.padEnd(w)}  created ${new Date(t.createdAt).toISOString()}  ${state}  ${budget}\n`,
      );
    }
    return 0;
  },
};

const tokenRevoke: Command = {
  name: 'token revoke',
  summary: 'revoke a token by name',
  help: TOKEN_HELP,
  options: { db: { type: 'string' }, store: { type: 'string' }, name: { type: 'string' } },
  positionals: 0,
  async run(flags) {
    const name = needName(flags);
    if (!withStore(flags, (s) => revokeToken(s, name)))
      throw new HearthError('input/invalid', `no token named "${name}".`, { details: { path: 'name' } });
    process.stdout.write(`revoked ${name}\n`);
    return 0;
  },
};

const commands: readonly Command[] = [
  hub,
  tokenCreate,
  tokenList,
  tokenRevoke,
  ...clientCommands,
  sampleCommand,
  volunteerCommand,
  exampleCommand,
  startCommand,
  selftestCommand,
  chainCommand,
];

function topUsage(): string {
  const w = Math.max(...commands.map((c) => c.name.length));
  return `usage: hearth <command> [options]    (hearth <command> --help for more)

${commands.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`).join('\n')}

Environment: HEARTH_HUB (default ${DEFAULT_HUB}), HEARTH_TOKEN, HEARTH_ADMIN_TOKEN (hub).`;
}

/** Runs one command line; returns the exit status. */
async function main(argv: string[]): Promise<number> {
  const [first, second] = argv;
  if (first === undefined) {
    process.stderr.write(`${topUsage()}\n`);
    return 2;
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    process.stdout.write(`${topUsage()}\n`);
    return 0;
  }
  let cmd: Command | undefined;
  let rest: string[];
  if (first === 'token') {
    if (second === undefined || second === '--help' || second === '-h') {
      (second === undefined ? process.stderr : process.stdout).write(`${TOKEN_HELP}\n`);
      return second === undefined ? 2 : 0;
    }
    cmd = commands.find((c) => c.name === `token ${second}`);
    rest = argv.slice(2);
  } else {
    cmd = commands.find((c) => c.name === first && !c.name.includes(' '));
    rest = argv.slice(1);
  }
  if (!cmd) {
    const what = first === 'token' ? `token ${second}` : first;
    process.stderr.write(`hearth: unknown command "${what}"\n\n${topUsage()}\n`);
    return 2;
  }
  try {
    const { flags, positionals, help } = parse(cmd, rest);
    if (help) {
      process.stdout.write(`${cmd.help}\n`);
      return 0;
    }
    return await cmd.run(flags, positionals);
  } catch (e) {
    if (isHearthError(e, 'cli/usage')) {
      process.stderr.write(`hearth ${cmd.name}: ${e.message}\n\n${cmd.help}\n`);
      return 2;
    }
    if (isHearthError(e)) {
      process.stderr.write(`hearth ${cmd.name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

// Exit explicitly: fetch's keep-alive sockets must not hold a finished command open.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(
      `hearth: unexpected failure: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  },
);
