const UNIT_SECONDS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
const PART = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;

/** Parse `0s`, `500ms`, `5s`, `2m`, `1h30m` into seconds; `undefined` when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return undefined;
  PART.lastIndex = 0;
  let seconds = 0;
  let consumed = 0;
  for (let match = PART.exec(trimmed); match !== null; match = PART.exec(trimmed)) {
    const [whole, amount, unit] = match;
    seconds += Number(amount) * (UNIT_SECONDS[unit ?? ''] ?? Number.NaN);
    consumed += whole.length;
  }
  return consumed === trimmed.length && Number.isFinite(seconds) ? seconds : undefined;
}
