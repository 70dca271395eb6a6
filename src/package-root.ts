import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { BisyncError, ExitCode } from './errors.js';

/**
 * A file shipped at the package root (templates/, sync.config.yaml, schema/), found from both
 * src/** (tests run the sources) and dist/src/** (the built CLI).
 */
export function packageFile(relative: string, from: string = import.meta.url): string {
  for (const up of ['../', '../../', '../../../', '../../../../']) {
    const candidate = fileURLToPath(new URL(`${up}${relative}`, from));
    if (existsSync(candidate) && existsSync(fileURLToPath(new URL(`${up}package.json`, from)))) return candidate;
  }
  throw new BisyncError('INSTALL_INCOMPLETE', `${relative} is missing from this bisync installation`, { exitCode: ExitCode.usage, hint: 'reinstall it (npm ci in a checkout)' });
}
