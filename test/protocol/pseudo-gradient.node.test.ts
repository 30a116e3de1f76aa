import { describe, expect, it } from 'vitest';
import { HearthError } from '../../src/core/errors.ts';
import {
  type Compression,
  decodeAdd,
  decodePseudoGradient,
  ErrorFeedback,
  encodePseudoGradient,
  frameInfo,
  topkCount,
} from '../../src/protocol/pseudo-gradient.ts';
import { seededRandom } from '../../src/train/config.ts';

function randomDelta(n: number, seed: number, amp = 1e-2): Float32Array {
  const r = seededRandom(seed);
  // Heavy-tailed, like real pseudo-gradients: most entries small, a few large.
  return Float32Array.from({ length: n }, () => amp * (2 * r() - 1) * (r() < 0.05 ? 20 : 1));
}

function expectCode(fn: () => unknown, code: string, part: string): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, `expected ${code}`).toBeInstanceOf(HearthError);
  expect((err as HearthError).code).toBe(code);
  expect((err as HearthError).message).toContain(part);
}

const CODECS: Compression[] = [
  { codec: 'none' },
  { codec: 'int8', chunk: 64 },
  { codec: '4bit', chunk: 64 },
  { codec: 'topk', density: 0.05, chunk: 32 },
];

describe('pseudo-gradient codecs', () => {
  it('none round-trips exactly', () => {
    const x = randomDelta(1001, 1);
    expect(decodePseudoGradient(encodePseudoGradient(x, { codec: 'none' }), 1001)).toEqual(x);
  });

  it('int8 and 4bit: every element within half a quantisation step of its chunk scale', () => {
    const x = randomDelta(1000, 2);
    for (const [codec, levels] of [
      ['int8', 127],
      ['4bit', 7],
    ] as const) {
      const chunk = 64;
      const y = decodePseudoGradient(encodePseudoGradient(x, { codec, chunk }), x.length);
      for (let c = 0; c < x.length; c += chunk) {
        let s = 0;
        for (let i = c; i < Math.min(x.length, c + chunk); i++) s = Math.max(s, Math.abs(x[i] as number));
        for (let i = c; i < Math.min(x.length, c + chunk); i++) {
          expect(Math.abs((y[i] as number) - (x[i] as number))).toBeLessThanOrEqual(
            (s / levels) * 0.5 * (1 + 1e-6),
          );
        }
      }
    }
  });

  it('topk keeps exactly the k largest magnitudes, each within a third of its chunk scale', () => {
    const x = randomDelta(2000, 3);
    const k = topkCount(2000, 0.05);
    const y = decodePseudoGradient(
      encodePseudoGradient(x, { codec: 'topk', density: 0.05, chunk: 1e6 }),
      2000,
    );
    const kept = [...y.keys()].filter((i) => y[i] !== 0);
    expect(kept.length).toBe(k);
    const threshold = [...x].map(Math.abs).sort((a, b) => b - a)[k - 1] as number;
    let s = 0;
    for (const i of kept) s = Math.max(s, Math.abs(x[i] as number));
    for (const i of kept) {
      expect(Math.abs(x[i] as number)).toBeGreaterThanOrEqual(threshold);
      expect(Math.abs((y[i] as number) - (x[i] as number))).toBeLessThanOrEqual(s / 3 + 1e-9);
      expect(Math.sign(y[i] as number)).toBe(Math.sign(x[i] as number));
    }
  });

  it('frame sizes: int8 ≈ 1 byte, 4bit ≈ ½ byte per element, topk at 1% under 1.7 bytes per kept entry', () => {
    const n = 100_000;
    const x = randomDelta(n, 4);
    expect(encodePseudoGradient(x, { codec: 'int8' }).byteLength).toBeLessThan(n * 1.02 + 64);
    expect(encodePseudoGradient(x, { codec: '4bit' }).byteLength).toBeLessThan(n * 0.52 + 64);
    const topk = encodePseudoGradient(x, { codec: 'topk', density: 0.01 });
    expect(topk.byteLength).toBeLessThan(1000 * 1.7 + 64);
  });

  it('error feedback: Σ decoded frames + residual = Σ Δ over 30 rounds, residual bounded', () => {
    const n = 3000;
    for (const c of CODECS) {
      const ef = new ErrorFeedback(n);
      const sumDelta = new Float64Array(n);
      const sumSent = new Float32Array(n);
      for (let round = 0; round < 30; round++) {
        const d = randomDelta(n, 100 + round);
        for (let i = 0; i < n; i++) sumDelta[i] = (sumDelta[i] as number) + (d[i] as number);
        decodeAdd(ef.encode(d, c), sumSent);
      }
      let worst = 0;
      let resid = 0;
      for (let i = 0; i < n; i++) {
        worst = Math.max(
          worst,
          Math.abs((sumSent[i] as number) + (ef.residual[i] as number) - (sumDelta[i] as number)),
        );
        resid = Math.max(resid, Math.abs(ef.residual[i] as number));
      }
      // f32 accumulation of 30 rounds of values ≲ 0.2: a few ulps of 1.
      expect(worst, `${c.codec} telescoping`).toBeLessThan(1e-5);
      // What is held back stays of the order of a few rounds' Δ (≤ 0.2 each), never grows unbounded.
      expect(resid, `${c.codec} residual`).toBeLessThan(c.codec === 'topk' ? 3 : 0.2);
    }
  });

  it('the same input gives the same bytes', () => {
    const x = randomDelta(5000, 5);
    for (const c of CODECS) expect(encodePseudoGradient(x, c)).toEqual(encodePseudoGradient(x, c));
  });

  it('refuses to encode NaN (train/diverged)', () => {
    const x = randomDelta(10, 6);
    x[3] = Number.NaN;
    expectCode(() => encodePseudoGradient(x, { codec: 'int8' }), 'train/diverged', 'element 3');
  });

  describe('bad frames are rejected with train/frame, naming the field', () => {
    const x = randomDelta(300, 7);
    const good = {
      none: encodePseudoGradient(x, { codec: 'none' }),
      int8: encodePseudoGradient(x, { codec: 'int8', chunk: 64 }),
      '4bit': encodePseudoGradient(x, { codec: '4bit', chunk: 64 }),
      topk: encodePseudoGradient(x, { codec: 'topk', density: 0.1, chunk: 8 }),
    };
    const edit = (f: Uint8Array, at: number, v: number) => {
      const g = f.slice();
      g[at] = v;
      return g;
    };
    const cases: [string, Uint8Array, string, number?][] = [
      ['shorter than the header', good.int8.slice(0, 10), 'shorter than the 24-byte header'],
      ['bad magic', edit(good.int8, 0, 0x52), 'bad magic'],
      ['another version', edit(good.int8, 1, 9), 'version 9'],
      ['unknown codec', edit(good.int8, 2, 7), 'unknown codec 7'],
      ['reserved byte set', edit(good.int8, 3, 1), 'reserved'],
      ['truncated payload', good.int8.slice(0, good.int8.length - 1), 'payload bytes'],
      ['n of another model', good.int8, 'the model has 301', 301],
      ['chunk 0', edit(good.int8, 8, 0), 'chunk 0'],
      [
        'NaN scale',
        (() => {
          const f = good.int8.slice();
          new DataView(f.buffer).setFloat32(24, Number.NaN, true);
          return f;
        })(),
        'scale 0 is NaN',
      ],
      [
        'negative scale',
        (() => {
          const f = good['4bit'].slice();
          new DataView(f.buffer).setFloat32(28, -1, true);
          return f;
        })(),
        'scale 1 is -1',
      ],
      ['int8 code −128', edit(good.int8, 24 + 4 * 5 + 17, 0x80), 'code −128 at element 17'],
      ['4bit nibble 0', edit(good['4bit'], 24 + 4 * 5 + 3, 0x08), 'nibble 0 at element 7'],
      [
        'none with a NaN element',
        (() => {
          const f = good.none.slice();
          new DataView(f.buffer).setFloat32(24 + 4 * 2, Number.POSITIVE_INFINITY, true);
          return f;
        })(),
        'element 2 is Infinity',
      ],
      [
        'topk k > n',
        (() => {
          const f = good.topk.slice();
          new DataView(f.buffer).setUint32(12, 301, true);
          return f;
        })(),
        'k = 301 is out of range',
      ],
      [
        'topk index past n',
        (() => {
          const f = good.topk.slice();
          f[f.length - 1] = 0x7f; // the last gap: far past the end
          return f;
        })(),
        'past n = 300',
      ],
      [
        'topk trailing bytes',
        (() => {
          const f = new Uint8Array(good.topk.length + 1);
          f.set(good.topk);
          new DataView(f.buffer).setUint32(16, good.topk.length + 1 - 24, true);
          return f;
        })(),
        'bytes follow the last index',
      ],
    ];
    for (const [name, frame, part, n] of cases) {
      it(name, () => expectCode(() => decodePseudoGradient(frame, n ?? 300), 'train/frame', part));
    }
    it('a rejected frame leaves the accumulator unchanged', () => {
      const acc = new Float32Array(300).fill(1);
      expectCode(() => decodeAdd(edit(good.int8, 24 + 4 * 5 + 250, 0x80), acc), 'train/frame', 'code −128');
      expect(acc.every((v) => v === 1)).toBe(true);
    });
    it('frameInfo reads a good header', () => {
      expect(frameInfo(good.topk, 300)).toEqual({ codec: 'topk', n: 300, chunk: 8, k: 30 });
    });
  });
});
