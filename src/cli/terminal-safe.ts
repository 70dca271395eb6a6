/**
 * Text safe to print on a terminal: control characters other than line feed and tab (ESC starts
 * the sequences that move the cursor, retitle the window or rewrite what was printed) become
 * visible `\u001b` escapes. Names from a catalog or an error stored in a table can hold them.
 */
export function terminalSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
