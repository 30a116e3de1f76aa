// HearthError across a boundary keeps what went wrong underneath (issue 11: toJSON dropped
// `cause`): a HearthError cause as itself, any other error as its name and message.
import { describe, expect, it } from 'vitest';
import { HearthError, isHearthError } from '../../src/core/errors.ts';

describe('HearthError toJSON / fromJSON', () => {
  it('keeps the cause chain through JSON and structured clone', () => {
    const root = new TypeError('sqlite: disk I/O error');
    const mid = new HearthError('store/failed', 'Committing 3 change(s) failed.', {
      cause: root,
      details: { n: 3 },
    });
    const top = new HearthError('net/refused', 'The hub did not take result s/1.', { cause: mid });
    const wire = JSON.parse(JSON.stringify(top.toJSON()));
    expect(wire).toEqual({
      name: 'HearthError',
      code: 'net/refused',
      message: 'The hub did not take result s/1.',
      details: {},
      cause: {
        name: 'HearthError',
        code: 'store/failed',
        message: 'Committing 3 change(s) failed.',
        details: { n: 3 },
        cause: { name: 'TypeError', message: 'sqlite: disk I/O error' },
      },
    });
    for (const v of [wire, structuredClone(top.toJSON())]) {
      const back = HearthError.fromJSON(v);
      expect(isHearthError(back, 'net/refused')).toBe(true);
      expect(isHearthError(back.cause, 'store/failed')).toBe(true);
      const inner = (back.cause as HearthError).cause as Error;
      expect(inner).toBeInstanceOf(Error);
      expect([inner.name, inner.message]).toEqual(['TypeError', 'sqlite: disk I/O error']);
    }
  });

  it('leaves out an absent cause, and bounds a deep chain', () => {
    expect(new HearthError('input/invalid', 'x').toJSON()).not.toHaveProperty('cause');
    let e = new HearthError('input/invalid', 'level 0');
    for (let i = 1; i < 10; i++) e = new HearthError('input/invalid', `level ${i}`, { cause: e });
    let depth = 0;
    for (let c = e.toJSON().cause; c; c = 'code' in c ? c.cause : undefined) depth++;
    expect(depth).toBe(4);
    expect(new HearthError('input/invalid', 'x', { cause: 'a string' }).toJSON().cause).toEqual({
      name: 'string',
      message: 'a string',
    });
  });
});
