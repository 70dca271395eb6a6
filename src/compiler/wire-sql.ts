/**
 * The text of a planned statement as it travels to the server (SPEC §8: over a WAN the bytes sent
 * are the cost). `plan` prints the statements with their comments and layout, for a DBA to read;
 * the server gets the same tokens without them: each comment (`-- …`, `/* … *\/`, nested) and each
 * run of white space outside quotes becomes one space. Quoted identifiers, string constants and
 * dollar-quoted bodies are copied byte for byte, so a name with spaces, newlines or `--` in it
 * (they reach SQL only quoted) is untouched. What runs, and in which order, is unchanged.
 */
export function wireSql(sql: string): string {
  let cached = memo.get(sql);
  if (cached === undefined) {
    cached = compact(sql);
    if (memo.size >= MEMO_SIZE) memo.clear();
    memo.set(sql, cached);
  }
  return cached;
}

const MEMO_SIZE = 2000;
const memo = new Map<string, string>();

const SPACE = /\s/;
/** A character that may continue an identifier (PostgreSQL: letters, digits, `_`, `$`, non-ASCII). */
const IDENT_PART = /[A-Za-z0-9_$\u0080-\uffff]/;
/** A dollar quote's tag: `$$` or `$name$`, the name not starting with a digit (`$1` is a parameter). */
const DOLLAR_TAG = /^\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/;

function compact(sql: string): string {
  let out = '';
  let pendingSpace = false;
  let i = 0;
  const emit = (text: string): void => {
    if (pendingSpace && out.length > 0) out += ' ';
    pendingSpace = false;
    out += text;
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (SPACE.test(c)) {
      pendingSpace = true;
      i++;
    } else if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? sql.length : end + 1;
      pendingSpace = true;
    } else if (c === '/' && next === '*') {
      i = skipBlockComment(sql, i);
      pendingSpace = true;
    } else if (c === '"') {
      const end = closingQuote(sql, i, '"', false);
      emit(sql.slice(i, end));
      i = end;
    } else if (c === "'") {
      const prefix = sql[i - 1];
      const escapes = (prefix === 'E' || prefix === 'e') && !IDENT_PART.test(sql[i - 2] ?? ' ');
      const end = closingQuote(sql, i, "'", escapes);
      emit(sql.slice(i, end));
      i = end;
    } else if (c === '$' && !IDENT_PART.test(sql[i - 1] ?? ' ')) {
      const tag = DOLLAR_TAG.exec(sql.slice(i))?.[0];
      if (tag === undefined) {
        emit(c);
        i++;
      } else {
        const close = sql.indexOf(tag, i + tag.length);
        const end = close < 0 ? sql.length : close + tag.length;
        emit(sql.slice(i, end));
        i = end;
      }
    } else {
      // An ordinary token character: copied up to the next character that may start something else.
      let end = i + 1;
      while (end < sql.length && !/[\s'"$/-]/.test(sql[end] as string)) end++;
      emit(sql.slice(i, end));
      i = end;
    }
  }
  return out;
}

/** The index after the quote that closes the one at `start` (a doubled quote stays inside). */
function closingQuote(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  let i = start + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') i += 2;
    else if (c === quote && sql[i + 1] === quote) i += 2;
    else if (c === quote) return i + 1;
    else i++;
  }
  return sql.length;
}

/** The index after a block comment starting at `start`; PostgreSQL's block comments nest. */
function skipBlockComment(sql: string, start: number): number {
  let depth = 0;
  let i = start;
  while (i < sql.length) {
    if (sql[i] === '/' && sql[i + 1] === '*') {
      depth++;
      i += 2;
    } else if (sql[i] === '*' && sql[i + 1] === '/') {
      depth--;
      i += 2;
      if (depth === 0) return i;
    } else i++;
  }
  return sql.length;
}
