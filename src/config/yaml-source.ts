import { LineCounter, isMap, isPair, isScalar, isSeq, parseDocument, visit } from 'yaml';
import type { Document, Node } from 'yaml';
import type { ConfigProblem } from '../errors.js';

export type KeyPath = readonly (string | number)[];

/** `['tables', 2, 'after', 0]` → `tables[2].after[0]`. */
export function formatPath(path: KeyPath): string {
  return path
    .map((seg, i) => (typeof seg === 'number' ? `[${seg}]` : i === 0 ? seg : `.${seg}`))
    .join('');
}

/** A parsed YAML file that can point back at the line and column of any key path. */
export class YamlSource {
  private constructor(
    readonly file: string,
    readonly doc: Document,
    private readonly lines: LineCounter,
  ) {}

  /** Parse `text`; syntax errors come back as problems, all of them. */
  static parse(file: string, text: string): { source: YamlSource; problems: ConfigProblem[] } {
    const lines = new LineCounter();
    // Keys are compared as the JavaScript object will hold them: `true:` and `"true":` (or `1:` and
    // `"1":`) are the same key, and the second would silently replace the first.
    const sameKey = (a: unknown, b: unknown): boolean => keyText(a) === keyText(b);
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: sameKey });
    const source = new YamlSource(file, doc, lines);
    // Later syntax errors are mostly echoes of the first; report the first few.
    const problems = doc.errors.slice(0, 3).map((e): ConfigProblem => {
      const pos = lines.linePos(e.pos[0]);
      return {
        file,
        line: pos.line,
        column: pos.col,
        path: '',
        message: `YAML syntax error: ${e.message.split('\n')[0] ?? e.code}`,
        hint: 'fix the YAML syntax at this position (indentation, quotes, colons)',
      };
    });
    return { source, problems };
  }

  /** Position of the value at `path` (or of its key with `at: 'key'`); the nearest existing ancestor if absent. */
  locate(path: KeyPath, at: 'key' | 'value' = 'value'): { line: number; column: number } {
    let node: unknown = this.doc.contents;
    let offset = rangeStart(node) ?? 0;
    for (const [i, seg] of path.entries()) {
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (pair === undefined) break;
        const keyStart = rangeStart(pair.key);
        if (last && at === 'key' && keyStart !== undefined) {
          offset = keyStart;
          break;
        }
        node = pair.value;
        offset = rangeStart(node) ?? keyStart ?? offset;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item: unknown = node.items[seg];
        if (item === undefined) break;
        node = item;
        offset = rangeStart(node) ?? offset;
      } else {
        break;
      }
    }
    const pos = this.lines.linePos(offset);
    return { line: pos.line, column: pos.col };
  }

  /** Build a problem located at `path`. */
  problem(path: KeyPath, message: string, hint?: string, at: 'key' | 'value' = 'value'): ConfigProblem {
    const { line, column } = this.locate(path, at);
    return { file: this.file, line, column, path: formatPath(path), message, ...(hint === undefined ? {} : { hint }) };
  }

  /** Visit every string scalar that is a value (not a key), with its key path. */
  forEachStringValue(fn: (value: string, path: KeyPath, replace: (next: string) => void) => void): void {
    visit(this.doc, {
      Scalar: (key, node, ancestors) => {
        if (key === 'key' || typeof node.value !== 'string') return;
        const path: (string | number)[] = [];
        let child: unknown = node;
        for (let i = ancestors.length - 1; i >= 0; i--) {
          const parent = ancestors[i];
          if (isPair(parent)) {
            if (isScalar(parent.key)) path.unshift(String(parent.key.value));
          } else if (isSeq(parent)) {
            path.unshift(parent.items.indexOf(child as Node));
          }
          child = parent;
        }
        fn(node.value, path, (next) => {
          node.value = next;
        });
      },
    });
  }

  /**
   * The plain value of the document. Aliases that expand past a small budget (a "billion laughs"
   * file), or that point nowhere, are a problem at the first alias, not a crash.
   */
  toJS(): { value: unknown } | { problem: ConfigProblem } {
    try {
      return { value: this.doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) };
    } catch (error) {
      let at = 0;
      let found = false;
      visit(this.doc, {
        Alias: (_key, node) => {
          if (!found) at = node.range?.[0] ?? 0;
          found = true;
        },
      });
      const pos = this.lines.linePos(at);
      const excessive = /excessive alias/i.test(error instanceof Error ? error.message : '');
      return {
        problem: {
          file: this.file,
          line: pos.line,
          column: pos.col,
          path: '',
          message: excessive ? `YAML aliases expand to more than ${MAX_ALIAS_COUNT} nodes` : `YAML alias cannot be resolved: ${error instanceof Error ? error.message : String(error)}`,
          hint: 'a config needs few or no aliases (*name); write the values out, or use defaults: for shared table settings',
        },
      };
    }
  }
}

const MAX_ALIAS_COUNT = 100;

function keyText(node: unknown): string {
  return isScalar(node) ? String(node.value) : String(node);
}

function rangeStart(node: unknown): number | undefined {
  if (node !== null && typeof node === 'object' && 'range' in node) {
    const range = (node as { range?: [number, number, number] | null }).range;
    return range?.[0];
  }
  return undefined;
}
