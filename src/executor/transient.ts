/** SQLSTATEs and socket errors worth retrying: the connection or the transaction, not the data. */
const TRANSIENT_SQLSTATES = new Set(['40001', '40P01', '57P01', '57P02', '57P03', '53300', '55P03']);
const TRANSIENT_NODE_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN']);

/**
 * Whether a failed step may succeed if simply run again: connection loss, serialization failure,
 * deadlock, server shutdown or overload. Constraint violations, bad SQL or bad config never are.
 */
export function isTransient(code: string | undefined, message: string | undefined): boolean {
  if (code !== undefined) {
    if (code.startsWith('08') || TRANSIENT_SQLSTATES.has(code) || TRANSIENT_NODE_CODES.has(code)) return true;
  }
  return message !== undefined && /Connection terminated|connection ended unexpectedly|Client has encountered a connection error/i.test(message);
}

/** Backoff before retry `attempt` (1-based): 0.5 s, 1 s, 2 s, … capped at 8 s. */
export function backoffMs(attempt: number): number {
  return Math.min(8000, 500 * 2 ** (attempt - 1));
}
