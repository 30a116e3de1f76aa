// Seeded generators of malformed input for the hub's two trust boundaries: volunteer control
// messages (mutations of valid hello/auth/lease-request/heartbeat/result messages) and researcher
// HTTP requests (mutations of a valid manifest, bad blob uploads, bad routes and headers). Each
// case is generated from a valid one so that the hub's checks are reached field by field, not just
// its JSON parser.

/** Uniform in [0, 1), seeded (test/hub/fixtures.ts seededRng). */
export type Rng = () => number;

export const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng() * xs.length)]!;
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Path = readonly (string | number)[];

/** Every path into a JSON value (the root is []), objects and arrays included. */
export function paths(v: Json, at: Path = []): Path[] {
  const out: Path[] = [at];
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) out.push(...paths(v[i]!, [...at, i]));
  } else if (v !== null && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  }
  return out;
}

function getAt(v: Json, p: Path): Json | undefined {
  let cur: Json | undefined = v;
  for (const k of p) {
    if (cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string | number, Json>)[k];
  }
  return cur;
}

/** Sets (or, with `undefined`, deletes) the value at a non-root path of a deep copy. */
function setAt(v: Json, p: Path, value: Json | undefined): Json {
  const copy = structuredClone(v);
  if (p.length === 0) return value ?? null;
  const parent = getAt(copy, p.slice(0, -1)) as Record<string | number, Json>;
  const k = p[p.length - 1]!;
  if (value === undefined) {
    if (Array.isArray(parent)) parent.splice(k as number, 1);
    else delete parent[k];
  } else parent[k] = value;
  return copy;
}

const WRONG: readonly Json[] = [
  null,
  true,
  false,
  0,
  -1,
  1.5,
  2 ** 53 + 2,
  '',
  'x',
  '\u0000',
  [],
  [1],
  [null],
  {},
  { a: 1 },
  { v: 1 },
];

/** Raw JSON number tokens, some out of range, some not JSON at all. */
const NUMBER_TOKENS = [
  '1e999',
  '-1e999',
  '-1',
  '-0',
  '1e-400',
  'NaN',
  'Infinity',
  '-Infinity',
  '0x10',
  '01',
  '1.0',
  '9007199254740993',
  '1e20',
  '.5',
  '+1',
  '-2147483649',
];

/** Strings that are awkward to every layer between a socket and a regex. */
const UNICODE: readonly string[] = [
  '\ud800',
  '\udfff\ud800',
  '\u202e\u202dabc',
  '\u200b',
  '\ufeff',
  'e\u0301\u0301\u0301',
  '😀'.repeat(40),
  'a\u0000b',
  '\u2028\u2029',
  '\\',
  '"',
  '\uffff',
  'İı',
];

/** Placeholder for a raw token spliced into JSON text after stringify. */
const RAW = '@@RAW@@';

export interface FieldLimit {
  /** A path suffix (last key) and the largest valid length (string chars or array items). */
  readonly key: string;
  readonly max: number;
}

/** The control protocol's documented limits (control.ts CONTROL_LIMITS, shard.ts SHARD_LIMITS). */
export const CONTROL_FIELD_LIMITS: readonly FieldLimit[] = [
  { key: 'publicKey', max: 256 },
  { key: 'signature', max: 128 },
  { key: 'lease', max: 256 },
  { key: 'features', max: 64 },
  { key: 'shard', max: 256 },
  { key: 'job', max: 256 },
  { key: 'name', max: 128 },
  { key: 'device', max: 256 },
  { key: 'outputs', max: 64 },
  { key: 'shape', max: 8 },
  // All-reduce reports and fallback requests (issue 5).
  { key: 'round', max: 128 },
  { key: 'group', max: 1024 },
  { key: 'contributions', max: 1024 },
];

export type Mutation =
  | 'truncate'
  | 'wrong-type'
  | 'delete'
  | 'extra-key'
  | 'huge'
  | 'number'
  | 'nest'
  | 'unicode'
  | 'version'
  | 'type'
  | 'not-object'
  | 'base64'
  | 'tensor-bytes'
  | 'combo';

export const MUTATIONS: readonly Mutation[] = [
  'truncate',
  'wrong-type',
  'delete',
  'extra-key',
  'huge',
  'number',
  'nest',
  'unicode',
  'version',
  'type',
  'not-object',
  'base64',
  'tensor-bytes',
  'combo',
];

/**
 * One mutated JSON text of `template`. `limits` names size limits per key, for the
 * "near and over the limit" cases; `maxChars` bounds the text (the hub's message or body limit).
 */
export function mutateJson(
  rng: Rng,
  template: Json,
  limits: readonly FieldLimit[],
  maxChars: number,
  kind: Mutation = pick(rng, MUTATIONS),
): { text: string; kind: Mutation } {
  const all = paths(template);
  const nonRoot = all.filter((p) => p.length > 0);
  const objects = all.filter((p) => {
    const v = getAt(template, p);
    return v !== null && typeof v === 'object' && !Array.isArray(v);
  });
  const text = (v: Json, raw?: string) => {
    const s = JSON.stringify(v);
    return raw === undefined ? s : s.replace(`"${RAW}"`, raw);
  };
  switch (kind) {
    case 'truncate': {
      const s = text(template);
      return { text: s.slice(0, int(rng, 0, s.length - 1)), kind };
    }
    case 'wrong-type': {
      const p = pick(rng, nonRoot);
      const now = getAt(template, p);
      const options = WRONG.filter(
        (w) => typeof w !== typeof now || Array.isArray(w) !== Array.isArray(now) || w === null,
      );
      return { text: text(setAt(template, p, pick(rng, options))), kind };
    }
    case 'delete':
      return { text: text(setAt(template, pick(rng, nonRoot), undefined)), kind };
    case 'extra-key': {
      const p = pick(rng, objects);
      const key = pick(rng, [
        'extra',
        '__proto__',
        'constructor',
        '',
        'V',
        'type ',
        '\u0000',
        'x'.repeat(300),
      ]);
      const o = getAt(template, p) as Record<string, Json>;
      // Spliced in as text: JSON.parse makes "__proto__" an own key, an object literal would not.
      const withKey = setAt(template, p, { ...o, [RAW]: 1 });
      return { text: text(withKey).replace(`"${RAW}"`, JSON.stringify(key)), kind };
    }
    case 'huge': {
      const p = pick(rng, nonRoot);
      const key = String(p[p.length - 1]);
      const limit = limits.find((l) => l.key === key)?.max ?? 256;
      const n = pick(rng, [limit, limit + 1, limit * 2, 4096, Math.floor(maxChars / 2)]);
      const now = getAt(template, p);
      const value: Json = Array.isArray(now)
        ? Array.from({ length: Math.min(n, Math.floor(maxChars / 8)) }, () => (now[0] ?? 'a') as Json)
        : 'a'.repeat(Math.min(n, maxChars - 512));
      return { text: text(setAt(template, p, value)), kind };
    }
    case 'number': {
      const p = pick(rng, nonRoot);
      return { text: text(setAt(template, p, RAW), pick(rng, NUMBER_TOKENS)), kind };
    }
    case 'nest': {
      const depth = pick(rng, [64, 1000, 10_000, Math.floor((maxChars - 1024) / 5)]);
      const raw =
        rng() < 0.5 ? '['.repeat(depth) + ']'.repeat(depth) : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      return { text: text(setAt(template, pick(rng, nonRoot), RAW), raw), kind };
    }
    case 'unicode': {
      const p = pick(rng, nonRoot);
      const u = pick(rng, UNICODE);
      const now = getAt(template, p);
      return { text: text(setAt(template, p, typeof now === 'string' && rng() < 0.5 ? now + u : u)), kind };
    }
    case 'version':
      return {
        text: text(setAt(template, ['v'], pick(rng, [0, 1, 3, '2', null, 1.5, -1, true, [2], {}] as Json[]))),
        kind,
      };
    case 'type':
      return {
        text: text(
          setAt(
            template,
            ['type'],
            pick(rng, [
              '',
              'HELLO',
              'Hello',
              'lease',
              'no-work',
              'ack',
              'error',
              'challenge',
              'welcome',
              'x'.repeat(300),
              7,
              null,
              ['hello'],
              'hello\u0000',
            ] as Json[]),
          ),
        ),
        kind,
      };
    case 'not-object':
      return {
        text: pick(rng, [
          '',
          ' ',
          'null',
          '[]',
          '1',
          '"x"',
          'true',
          '{',
          '}',
          '[{}]',
          '\u0000',
          '{"v":1}',
          'undefined',
        ]),
        kind,
      };
    case 'base64':
    case 'tensor-bytes':
      // Only meaningful where there is tensor data; elsewhere, a wrong type.
      return mutateJson(rng, template, limits, maxChars, 'wrong-type');
    default: {
      // Two field-level mutations; never a nested or huge one first (re-parsing those is what
      // the hub is being tested on, not this generator).
      const simple: Mutation[] = ['wrong-type', 'delete', 'extra-key', 'number', 'unicode'];
      const once = mutateJson(rng, template, limits, maxChars, pick(rng, simple));
      let parsed: Json;
      try {
        parsed = JSON.parse(once.text) as Json;
      } catch {
        return { text: once.text, kind: 'combo' };
      }
      return { text: mutateJson(rng, parsed, limits, maxChars, pick(rng, MUTATIONS.slice(0, 8))).text, kind };
    }
  }
}

/** Wire tensor data mutations for a `result` template: bad base64url and wrong byte lengths. */
export function mutateTensor(rng: Rng, template: Json, kind: 'base64' | 'tensor-bytes'): string {
  const out = structuredClone(template) as { result: { outputs: Record<string, Json>[] } };
  const o = out.result.outputs[0]!;
  if (kind === 'base64') {
    o.data = pick(rng, [
      'A',
      'AAAAA',
      'AA==AA',
      '+/+/',
      'AAA=A',
      'AA AA',
      'AAAA\n',
      '====',
      '%%%%',
      'AAAA=',
      'AB==',
      `${o.data as string}!`,
      '\u00e9\u00e9\u00e9\u00e9',
    ]);
  } else {
    const n = pick(rng, [0, 1, 4, 12, 15, 17, 20, 64, 1000]);
    const bytes = Buffer.alloc(n, 7).toString('base64url');
    const which = int(rng, 0, 2);
    if (which === 0) o.data = bytes;
    else if (which === 1)
      o.shape = pick(rng, [[5], [2, 3], [0], [4, 1, 1], [1, 1, 1, 1, 1, 1, 1, 1, 4], [2 ** 31]]);
    else o.dtype = pick(rng, ['f16', 'f64', 'i64', 'F32', 'u8']);
  }
  return JSON.stringify(out);
}

// ---- HTTP ----

/** The manifest's documented limits (manifest.ts), for near/over-limit cases. */
export const MANIFEST_FIELD_LIMITS: readonly FieldLimit[] = [
  { key: 'name', max: 256 },
  { key: 'entryPoint', max: 128 },
  { key: 'bindings', max: 64 },
  { key: 'dispatch', max: 3 },
  { key: 'shape', max: 8 },
  { key: 'features', max: 64 },
  { key: 'honeypots', max: 1000 },
];

/** Bodies that are not JSON, or not complete JSON. */
export function badJsonBody(rng: Rng, good: string): string | Buffer {
  switch (int(rng, 0, 7)) {
    case 0:
      return good.slice(0, int(rng, 1, good.length - 1));
    case 1:
      return Buffer.from(Array.from({ length: int(rng, 1, 2000) }, () => int(rng, 0, 255)));
    case 2:
      return `\ufeff${good}`;
    case 3:
      return good.replace(/}$/, ',}');
    case 4:
      return good.replace(/"/g, "'");
    case 5:
      return `${good.slice(0, -1)},"creditRate":NaN}`;
    case 6:
      return `/* comment */${good}`;
    default:
      return `${good}${pick(rng, ['x', '}', ',', '{}', '\u0000'])}`;
  }
}
