import { describe, expect, it } from 'vitest';
import { escapeControl, flattenObject, formatCell, formatKeyValue, formatTable } from '../../../agent/cli/format.js';

describe('format', () => {
  it('aligns columns, pads all but the last, no trailing blanks', () => {
    expect(formatTable(['A', 'LONGER', 'C'], [['x', null, 'z'], ['wide-value', 'b', '']])).toBe(
      'A           LONGER  C\n' + 'x           -       z\n' + 'wide-value  b       -\n',
    );
  });

  it('header only when there are no rows', () => {
    expect(formatTable(['ID', 'NAME'], [])).toBe('ID  NAME\n');
  });

  it('key/value block', () => {
    expect(formatKeyValue([['a', 1], ['longer', true], ['c', null]])).toBe('a       1\nlonger  true\nc       -\n');
  });

  it('escapes control characters so API values cannot drive the terminal', () => {
    expect(escapeControl('a\x1b[31mb\nc\td\x7f')).toBe('a\\x1b[31mb\\nc\\td\\x7f');
    expect(formatCell({ k: 'v' })).toBe('{"k":"v"}');
  });

  it('flattens nested objects and arrays', () => {
    expect(flattenObject({ a: { b: 1, c: [1, 2] }, d: [{ e: 'x' }], f: [], g: {} })).toEqual([
      ['a.b', 1],
      ['a.c', '1, 2'],
      ['d[0].e', 'x'],
      ['f', null],
      ['g', null],
    ]);
  });
});
