// The one typed client of the hub's HTTP API (protocol/api.ts): the `hearth` CLI and the
// researcher console page (src/ui/console/) use it. Every call has a deadline (a half-open hub, a proxy that
// accepted and froze, never holds a caller forever), every answer is parsed rather than cast,
// and every failure is a HearthError: 'net/unreachable' (no connection), 'net/timeout' (no answer
// in time), 'net/refused' (the hub said no: `details.status`, `details.code` are its own) or
// 'net/protocol' (an answer that is not the API's).
import { HearthError } from '../core/errors.ts';
import { sha256Hex } from '../core/hash.ts';
import {
  API_PREFIX,
  type BudgetAnswer,
  budgetAnswer,
  type Cancelled,
  cancelled,
  creditReport,
  errorBody,
  type HubStatsAnswer,
  hubStats,
  type JobList,
  type JobProgressAnswer,
  jobList,
  jobProgress,
  type RelayedClaim,
  type ResultsIndex,
  relayedClaim,
  resultsIndex,
  type Submitted,
  submitted,
  type TrainProgress,
  trainProgress,
  type VoucherAnswer,
  voucherAnswer,
  type WalletEarned,
  type WalletRules,
  walletEarned,
  walletRules,
} from '../protocol/api.ts';
import type { Schema } from '../protocol/schema.ts';

export interface HubApiOptions {
  /** `http(s)://host:port` of the hub. */
  readonly hub: string;
  /** A researcher's (or the admin's) token; blob reads need none. */
  readonly token?: string;
  /** How long one request may go unanswered (default 30 s), plus a second per MiB it uploads. */
  readonly timeoutMs?: number;
  readonly fetch?: typeof fetch;
}

interface CallOptions {
  readonly body?: Uint8Array<ArrayBuffer> | string;
  /** Statuses that are answers, not failures (default: any 2xx). */
  readonly accept?: readonly number[];
  /** Keep the deadline off the body: a stream read as it comes. */
  readonly stream?: boolean;
  readonly signal?: AbortSignal;
}

/**
 * The hub's API, typed.
 *
 * @example
 * const api = new HubApi({ hub: 'http://127.0.0.1:8787', token });
 * const { job } = await api.submit(manifestJson);
 * for await (const p of api.watch(job)) console.log(p.validated, '/', p.shards);
 */
export class HubApi {
  readonly hub: string;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;

  constructor(opts: HubApiOptions) {
    this.hub = opts.hub.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    // Called unbound (`this.#fetch(...)`), a browser's own fetch throws "Illegal invocation".
    this.#fetch = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /** Whether the hub holds a blob (`HEAD /v1/blobs/:sha256`, public). */
  async hasBlob(sha: string): Promise<boolean> {
    const r = await this.#call('HEAD', `/blobs/${sha}`, { accept: [200, 404] });
    return r.status === 200;
  }

  /** Uploads a blob (`PUT /v1/blobs/:sha256`); the hub checks the hash. */
  async putBlob(sha: string, bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    await (await this.#call('PUT', `/blobs/${sha}`, { body: bytes })).arrayBuffer();
  }

  /** Submits a job manifest (JSON text, as the researcher wrote it). */
  async submit(manifest: string): Promise<Submitted> {
    return this.#json(await this.#call('POST', '/jobs', { body: manifest }), submitted, 'POST /v1/jobs');
  }

  /** The caller's jobs (the admin's: every job), newest first, at most 200, with their counts. */
  jobs(): Promise<JobList> {
    return this.#call('GET', '/jobs').then((r) => this.#json(r, jobList, `GET ${API_PREFIX}/jobs`));
  }

  /**
   * The hub's service levels over the last hour (`GET /v1/stats`): shard latency p50/p95,
   * validated shards per minute, volunteers connected, the fraction of leases that ended in a
   * valid result, and the caller's running (and recently active) jobs with their rate and ETA.
   */
  stats(): Promise<HubStatsAnswer> {
    return this.#call('GET', '/stats').then((r) => this.#json(r, hubStats, `GET ${API_PREFIX}/stats`));
  }

  progress(job: string): Promise<JobProgressAnswer> {
    const path = `/jobs/${encodeURIComponent(job)}`;
    return this.#call('GET', path).then((r) => this.#json(r, jobProgress, `GET ${API_PREFIX}${path}`));
  }

  cancel(job: string): Promise<Cancelled> {
    const path = `/jobs/${encodeURIComponent(job)}`;
    return this.#call('DELETE', path).then((r) => this.#json(r, cancelled, `DELETE ${API_PREFIX}${path}`));
  }

  results(job: string): Promise<ResultsIndex> {
    const path = `/jobs/${encodeURIComponent(job)}/results`;
    return this.#call('GET', path).then((r) => this.#json(r, resultsIndex, `GET ${API_PREFIX}${path}`));
  }

  /** A train job's rounds, loss curve and trained θ (`GET /v1/jobs/:id/train`). */
  train(job: string): Promise<TrainProgress> {
    const path = `/jobs/${encodeURIComponent(job)}/train`;
    return this.#call('GET', path).then((r) => this.#json(r, trainProgress, `GET ${API_PREFIX}${path}`));
  }

  /** A blob's bytes (`GET /v1/blobs/:sha256`, public), checked against its hash. */
  async blob(sha: string): Promise<Uint8Array> {
    const r = await this.#call('GET', `/blobs/${sha}`);
    const bytes = new Uint8Array(await r.arrayBuffer());
    if ((await sha256Hex(bytes)) !== sha) {
      throw new HearthError('blob/corrupt', `blob ${sha.slice(0, 12)}…: the bytes do not match their hash.`, {
        details: { sha256: sha },
      });
    }
    return bytes;
  }

  /** One output tensor's bytes of a validated shard (by its index in the job). */
  async output(job: string, index: number, name: string): Promise<Uint8Array> {
    const path = `/jobs/${encodeURIComponent(job)}/results/${index}/${encodeURIComponent(name)}`;
    const r = await this.#call('GET', path);
    try {
      return new Uint8Array(await r.arrayBuffer());
    } catch (e) {
      throw new HearthError(
        'net/unreachable',
        `shard ${index} output "${name}": the download broke off (${e instanceof Error ? e.message : e}).`,
        { cause: e },
      );
    }
  }

  /** How the hub pays credit as tokens (`GET /v1/wallet`, public); 'net/refused' `wallet/disabled` when it does not. */
  walletRules(): Promise<WalletRules> {
    return this.#call('GET', '/wallet').then((r) => this.#json(r, walletRules, `GET ${API_PREFIX}/wallet`));
  }

  /** What an address has earned (and, when the hub reads the chain, what it has claimed). */
  walletEarned(address: string): Promise<WalletEarned> {
    const path = `/wallet/${encodeURIComponent(address)}`;
    return this.#call('GET', path).then((r) => this.#json(r, walletEarned, `GET ${API_PREFIX}${path}`));
  }

  /** The address's latest cumulative voucher, for a claim the volunteer submits itself. */
  voucher(address: string): Promise<VoucherAnswer> {
    const path = `/wallet/${encodeURIComponent(address)}/voucher`;
    return this.#call('GET', path).then((r) => this.#json(r, voucherAnswer, `GET ${API_PREFIX}${path}`));
  }

  /** Asks the hub to submit the address's claim from its funded key (waits for the receipt). */
  relayClaim(address: string): Promise<RelayedClaim> {
    const path = `/wallet/${encodeURIComponent(address)}/claim`;
    return this.#call('POST', path, { body: '{}' }).then((r) =>
      this.#json(r, relayedClaim, `POST ${API_PREFIX}${path}`),
    );
  }

  /** The caller's credit budget and what its jobs hold of it (`GET /v1/budget`). */
  budget(): Promise<BudgetAnswer> {
    return this.#call('GET', '/budget').then((r) => this.#json(r, budgetAnswer, `GET ${API_PREFIX}/budget`));
  }

  /** A volunteer's credit, exact (base units as bigint). */
  credits(volunteer: string) {
    const path = `/volunteers/${encodeURIComponent(volunteer)}/credits`;
    return this.#call('GET', path).then((r) => this.#json(r, creditReport, `GET ${API_PREFIX}${path}`));
  }

  /**
   * The job's progress as the hub pushes it (`GET /v1/jobs/:id/events`): the current progress at
   * once, then after each change; ends after the job is done, failed or cancelled. A stream that
   * is silent past the deadline (the hub sends a keep-alive every 15 s) fails with 'net/timeout'.
   */
  async *watch(job: string, signal?: AbortSignal): AsyncGenerator<JobProgressAnswer> {
    const path = `/jobs/${encodeURIComponent(job)}/events`;
    const idle = new AbortController();
    const onAbort = () => idle.abort();
    signal?.addEventListener('abort', onAbort);
    const r = await this.#call('GET', path, { stream: true, signal: idle.signal });
    const body = r.body;
    if (!body) throw new HearthError('net/protocol', `GET ${API_PREFIX}${path}: the answer has no body.`);
    const reader = body.getReader();
    const decoder = new TextDecoder();
    const limit = Math.max(this.#timeoutMs, 20_000);
    let buf = '';
    try {
      for (;;) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const chunk = await Promise.race([
          reader.read(),
          new Promise<never>((_, reject) => {
            timer = setTimeout(
              () =>
                reject(
                  new HearthError(
                    'net/timeout',
                    `the hub's event stream for ${job} was silent for ${limit} ms.`,
                  ),
                ),
              limit,
            );
          }),
        ]).finally(() => clearTimeout(timer));
        if (chunk.done) return;
        buf += decoder.decode(chunk.value, { stream: true });
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data: '))
            .map((l) => l.slice(6))
            .join('\n');
          if (!block.startsWith('event: progress') || data === '') continue; // keep-alive, or unknown
          yield this.#parse(data, jobProgress, `GET ${API_PREFIX}${path}`);
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      idle.abort();
      reader.cancel().catch(() => {});
    }
  }

  async #call(method: string, path: string, opts: CallOptions = {}): Promise<Response> {
    const url = `${this.hub}${API_PREFIX}${path}`;
    const body = opts.body;
    const ms = this.#timeoutMs + (typeof body === 'object' ? Math.ceil(body.byteLength / 2 ** 20) * 1000 : 0);
    // A stream's deadline covers its headers; its body has the idle limit in watch().
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), ms);
    const signal = opts.signal ? AbortSignal.any([deadline.signal, opts.signal]) : deadline.signal;
    const timedOut = () =>
      new HearthError(
        'net/timeout',
        `the hub at ${this.hub} did not answer ${method} ${API_PREFIX}${path} within ${ms} ms; is it overloaded or stuck?`,
      );
    let r: Response;
    try {
      r = await this.#fetch(url, {
        method,
        headers: {
          ...(this.#token ? { authorization: `Bearer ${this.#token}` } : {}),
          ...(typeof body === 'string' ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body } : {}),
        signal,
      });
    } catch (e) {
      clearTimeout(timer);
      if (deadline.signal.aborted) throw timedOut();
      const why = e instanceof Error && e.cause instanceof Error ? e.cause.message : String(e);
      throw new HearthError(
        'net/unreachable',
        `cannot reach the hub at ${this.hub} (${why}); is "hearth hub" running there?`,
        {
          cause: e,
        },
      );
    }
    if (opts.stream) clearTimeout(timer);
    if ((opts.accept ?? []).includes(r.status) || (opts.accept === undefined && r.ok)) {
      if (!opts.stream) {
        // The body still counts against the deadline: read it before the timer goes.
        const bytes = await r.arrayBuffer().catch(() => {
          throw timedOut();
        });
        clearTimeout(timer);
        return new Response(bytes, { status: r.status, headers: r.headers });
      }
      return r;
    }
    const text = await r.text().catch(() => {
      throw timedOut();
    });
    clearTimeout(timer);
    let detail = text.slice(0, 500);
    let code: string | undefined;
    try {
      const e = errorBody(JSON.parse(text), 'answer').error;
      detail = `${e.code}: ${e.message}`;
      code = e.code;
    } catch {
      // Not the hub's JSON (a proxy's page?): the raw text says more than nothing.
    }
    throw new HearthError('net/refused', `${method} ${API_PREFIX}${path} failed with ${r.status} ${detail}`, {
      details: { status: r.status, ...(code === undefined ? {} : { code }) },
    });
  }

  async #json<T>(r: Response, schema: Schema<T>, what: string): Promise<T> {
    let text: string;
    try {
      text = await r.text();
    } catch (e) {
      throw new HearthError('net/protocol', `the hub's answer could not be read: ${(e as Error).message}`, {
        cause: e,
      });
    }
    return this.#parse(text, schema, what);
  }

  #parse<T>(text: string, schema: Schema<T>, what: string): T {
    try {
      return schema(JSON.parse(text), 'answer');
    } catch (e) {
      throw new HearthError(
        'net/protocol',
        `the hub's answer to ${what} could not be read: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
  }
}
