import type { PlanStep } from '../compiler/plan-types.js';

/**
 * Run steps with up to `concurrency` at a time. All forward steps finish before any reverse step
 * starts, and within a direction a step waits for the steps of the tables it runs `after`.
 * Results come back in plan order, whatever order the steps finished in.
 */
export async function runScheduled<T>(
  steps: readonly PlanStep[],
  concurrency: number,
  run: (step: PlanStep) => Promise<T>,
): Promise<T[]> {
  const results: T[] = new Array<T>(steps.length);
  for (const direction of ['forward', 'reverse'] as const) {
    const phase = steps.map((step, index) => ({ step, index })).filter((s) => s.step.direction === direction);
    const inPhase = new Set(phase.map((s) => s.step.table));
    const done = new Set<string>();
    const started = new Set<number>();
    await new Promise<void>((resolve, reject) => {
      let running = 0;
      const launch = (): void => {
        if (done.size === phase.length) {
          resolve();
          return;
        }
        for (const { step, index } of phase) {
          if (running >= Math.max(1, concurrency)) break;
          if (started.has(index)) continue;
          if (!step.after.every((t) => done.has(t) || !inPhase.has(t))) continue;
          started.add(index);
          running++;
          run(step).then(
            (result) => {
              results[index] = result;
              done.add(step.table);
              running--;
              launch();
            },
            reject,
          );
        }
      };
      launch();
    });
  }
  return results;
}
