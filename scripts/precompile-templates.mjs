// `npm run build`, after tsc: compile every SQL template ahead (see src/compiler/template-store.ts),
// so a run does not spend its first ~150 ms compiling them. Without this step templates compile at run time.
import { writeFileSync } from 'node:fs';
import { precompiledTemplates } from '../dist/src/compiler/render-sql.js';
import { PRECOMPILED_FILE } from '../dist/src/compiler/template-store.js';

writeFileSync(PRECOMPILED_FILE, precompiledTemplates());
