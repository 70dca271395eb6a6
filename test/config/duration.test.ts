import { describe, expect, it } from 'vitest';
import { parseDuration } from '../../src/config/duration.js';

describe('parseDuration', () => {
  it.each([
    ['0s', 0],
    ['5s', 5],
    ['500ms', 0.5],
    ['2m', 120],
    ['1h', 3600],
    ['1d', 86400],
    ['1h30m', 5400],
    ['1m30s', 90],
    ['1.5s', 1.5],
    [' 5s ', 5],
  ])('%j is %d seconds', (text, seconds) => {
    expect(parseDuration(text)).toBe(seconds);
  });

  it.each(['', ' ', '5', 's', '-5s', '5 s', '5sec', '5S', '1h30', 'five', '5s5', '.5s', 'ms'])('%j is not a duration', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
