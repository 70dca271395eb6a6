import { describe, expect, it } from 'vitest';
import { wireSql } from '../../src/compiler/wire-sql.js';

// SPEC §8: statements travel without the comments and layout `plan` shows, never changing a token.
describe('wireSql: the statement as sent', () => {
  it('drops line and nested block comments and folds white space outside quotes', () => {
    expect(wireSql('-- header\nSELECT  a,\n       b -- trailing\n  FROM t /* one /* nested */ still */ WHERE x = $1\n')).toBe('SELECT a, b FROM t WHERE x = $1');
  });

  it('copies quoted identifiers, string constants and dollar quotes byte for byte', () => {
    const quoted = `SELECT "a  --b", "x""/*y*/  z", 'it''s -- not  a comment', E'back\\'s  --', $tag$ body -- kept $tag$, "line\nbreak" FROM t`;
    expect(wireSql(quoted)).toBe(quoted);
  });

  it('keeps $n parameters and identifiers containing $, and a minus that is not a comment', () => {
    expect(wireSql('SELECT a$b,  $1 - -$2, c / 2\n  FROM t')).toBe('SELECT a$b, $1 - -$2, c / 2 FROM t');
  });
});
