// bench: credit to a wallet — gas of a HearthCredit claim (1, 100, 10,000 shards; first and later), claimMany per address, vouchers signed per second
//
// On a real chain (anvil on loopback, HearthCredit deployed as `hearth chain` does):
//   1. one claim per account, settling 1, 100 and 10,000 shards of credit: the account's first
//      claim (its slot written from zero) and a later one (from nonzero) — a voucher is cumulative,
//      so neither may grow with the shards it settles;
//   2. `claimMany` of 50 accounts: a first batch (fresh accounts) and a later one, gas per address
//      (the transaction's gas over 50, its 21,000 base included);
//   3. vouchers signed per second by `signVoucher` with a private key (the hub's path), against
//      viem's `signTypedData` on the same vouchers, rounds alternating; the median of the rounds.
// Gas is the receipt's gasUsed: what the sender pays for, calldata included.
// Flags: --quick (shorter signing rounds).
// Last line: {"claim_gas_first": x, "claim_gas_later": x, "claim_many_gas_per_address": x, "vouchers_per_s": x}
// (claim figures: the largest over 1, 100 and 10,000 shards; claimMany: later batches;
// goals: later claims ≤ 50,000, claimMany ≤ 35,000 per address, ≥ 2,000 vouchers/s).
import { availableParallelism, loadavg } from 'node:os';
import type { Address, Hex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import {
  type SignedVoucher,
  signVoucher,
  VOUCHER_TYPES,
  type Voucher,
  voucherDomain,
} from '../src/credits/voucher.ts';
import {
  claimManyOnChain,
  claimOnChain,
  deployHearthCredit,
  startAnvil,
  walletFor,
} from '../src/node/chain.ts';
import { table } from '../src/node/start-view.ts';
import { formatCredit } from '../src/protocol/credit.ts';

const quick = process.argv.includes('--quick');
const ROUND_MS = quick ? 300 : 1000;
const ROUNDS = quick ? 3 : 5;
/** Credit one shard earns in the bench: 1.5 credits. */
const PER_SHARD = 1_500_000n;
const BATCH = 50;

const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? Number.NaN) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
const fresh = (): Address => privateKeyToAccount(generatePrivateKey()).address;
const fmt = (n: number | bigint) => Number(n).toLocaleString('en-US');

const anvil = await startAnvil();
try {
  const [a0, a1] = anvil.accounts;
  if (!a0 || !a1) throw new Error('anvil gave fewer than two dev accounts');
  const hubKey: Hex = generatePrivateKey();
  const hub = privateKeyToAccount(hubKey);
  const owner = await walletFor(anvil.rpcUrl, a0.privateKey);
  const relayer = await walletFor(anvil.rpcUrl, a1.privateKey);
  const contract = await deployHearthCredit(owner, { owner: owner.account.address, signer: hub.address });
  const domain = voucherDomain(anvil.chainId, contract);
  const expiry = BigInt(Math.floor(Date.now() / 1000) + 86_400);
  const signed = async (account: Address, amount: bigint): Promise<SignedVoucher> => {
    const voucher: Voucher = { account, amount, expiry };
    return { voucher, signature: await signVoucher(hubKey, domain, voucher) };
  };
  // A first claim elsewhere, so that the total supply is nonzero before any measured claim, as on
  // any chain after the first claim ever.
  const warm = await signed(fresh(), 1n);
  await claimOnChain(relayer, contract, warm.voucher, warm.signature);

  // ---------------------------------------------------------------- 1. claims
  const claimRows: string[][] = [['shards settled', 'credit', 'first claim gas', 'later claim gas']];
  const firsts: bigint[] = [];
  const laters: bigint[] = [];
  for (const shards of [1n, 100n, 10_000n]) {
    const account = fresh();
    const a = await signed(account, shards * PER_SHARD);
    const first = await claimOnChain(relayer, contract, a.voucher, a.signature);
    const b = await signed(account, 2n * shards * PER_SHARD);
    const later = await claimOnChain(relayer, contract, b.voucher, b.signature);
    if (first.minted !== shards * PER_SHARD || later.minted !== shards * PER_SHARD) {
      throw new Error(
        `claim minted ${first.minted} then ${later.minted}, expected ${shards * PER_SHARD} each`,
      );
    }
    firsts.push(first.gasUsed);
    laters.push(later.gasUsed);
    claimRows.push([fmt(shards), formatCredit(shards * PER_SHARD), fmt(first.gasUsed), fmt(later.gasUsed)]);
  }

  // ---------------------------------------------------------------- 2. claimMany
  const accounts = Array.from({ length: BATCH }, fresh);
  const manyRows: string[][] = [['claimMany of 50', 'gas', 'gas per address', 'paid', 'skipped']];
  const perAddress: number[] = [];
  for (const [label, k] of [
    ['first (fresh accounts)', 1n],
    ['later', 2n],
  ] as const) {
    const batch = await Promise.all(accounts.map((a, i) => signed(a, k * BigInt(i + 1) * PER_SHARD)));
    const r = await claimManyOnChain(relayer, contract, batch);
    if (r.paid.length !== BATCH) throw new Error(`claimMany paid ${r.paid.length} of ${BATCH}`);
    perAddress.push(Number(r.gasUsed) / BATCH);
    manyRows.push([
      label,
      fmt(r.gasUsed),
      fmt(Math.round(Number(r.gasUsed) / BATCH)),
      String(r.paid.length),
      String(r.skipped.length),
    ]);
  }

  // ---------------------------------------------------------------- 3. signing
  let n = 0;
  const next = (): Voucher => ({
    account: accounts[n % BATCH] as Address,
    amount: BigInt(++n) * PER_SHARD,
    expiry,
  });
  /** Vouchers per second of wall time and per second of this process's CPU time, in one round. */
  const rate = async (sign: (v: Voucher) => Promise<Hex>): Promise<{ wall: number; cpu: number }> => {
    let count = 0;
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    while (performance.now() - t0 < ROUND_MS) {
      for (let i = 0; i < 50; i++) await sign(next());
      count += 50;
    }
    const c = process.cpuUsage(c0);
    return { wall: (count * 1000) / (performance.now() - t0), cpu: (count * 1e6) / (c.user + c.system) };
  };
  const ours = (v: Voucher) => signVoucher(hubKey, domain, v);
  const viems = (v: Voucher) =>
    hub.signTypedData({ domain, types: VOUCHER_TYPES, primaryType: 'Voucher', message: v });
  await rate(ours);
  await rate(viems);
  const oursRates: { wall: number; cpu: number }[] = [];
  const viemRates: { wall: number; cpu: number }[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    if (r % 2 === 0) {
      oursRates.push(await rate(ours));
      viemRates.push(await rate(viems));
    } else {
      viemRates.push(await rate(viems));
      oursRates.push(await rate(ours));
    }
  }
  const wall = (xs: typeof oursRates) => median(xs.map((x) => x.wall));
  const cpu = (xs: typeof oursRates) => median(xs.map((x) => x.cpu));
  const signRows = [
    ['signing (one thread)', 'vouchers/s (median)', 'per CPU-second', 'rounds (wall)'],
    ...(
      [
        ['signVoucher (cached domain, digest signed)', oursRates],
        ["viem's signTypedData", viemRates],
      ] as const
    ).map(([name, xs]) => [
      name,
      fmt(Math.round(wall(xs))),
      fmt(Math.round(cpu(xs))),
      xs.map((x) => Math.round(x.wall)).join(', '),
    ]),
  ];
  const load = loadavg()[0] ?? 0;

  const claimFirst = Math.max(...firsts.map(Number));
  const claimLater = Math.max(...laters.map(Number));
  process.stdout.write(
    `HearthCredit on anvil ${anvil.chainId} (${contract}); gas is the receipt's gasUsed, 21,000 base and calldata included\n\n` +
      `${table(claimRows)}\n\n${table(manyRows)}\n\n${table(signRows)}\n` +
      `(load average ${load.toFixed(1)} over ${availableParallelism()} cores: on a shared machine the wall rate is lower than the CPU rate)\n\n` +
      `goals: later claim ≤ 50,000 (${claimLater <= 50_000 ? 'met' : 'NOT met'}), claimMany ≤ 35,000 per address ` +
      `(later ${Math.round(perAddress[1] ?? 0)}, first ${Math.round(perAddress[0] ?? 0)}: ${(perAddress[1] ?? Infinity) <= 35_000 ? 'met' : 'NOT met'}), ` +
      `≥ 2,000 vouchers/s (${wall(oursRates) >= 2000 ? 'met' : 'NOT met'})\n`,
  );
  process.stdout.write(
    `${JSON.stringify({
      claim_gas_first: claimFirst,
      claim_gas_later: claimLater,
      claim_many_gas_per_address: Math.round(perAddress[1] ?? Number.NaN),
      vouchers_per_s: Math.round(wall(oursRates)),
    })}\n`,
  );
} finally {
  await anvil.close();
}
