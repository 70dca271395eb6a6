import type { PlanStep } from '../compiler/plan-types.js';

/** On a TTY, a one-line "rows streamed" counter per step, redrawn at most every 200 ms. */
export function progressReporter(stream: NodeJS.WriteStream): ((step: PlanStep, rows: number) => void) | undefined {
  if (stream.isTTY !== true) return undefined;
  let last = 0;
  return (step, rows) => {
    const now = Date.now();
    if (now - last < 200) return;
    last = now;
    stream.write(`\r\x1b[2K${step.table} ${step.direction}: ${rows.toLocaleString('en')} rows streamed`);
  };
}
