import { createHash } from 'node:crypto';

/** The SHA-256 of a text (as UTF-8), in hex: plan and step hashes, probe keys, the fingerprints of built files. */
export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
