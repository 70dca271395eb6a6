// `npm run build`, after tsc: compile ahead what every run would otherwise compile before it can
// start: the SQL templates (src/compiler/template-store.ts) and the config's JSON Schema validator
// (src/config/schema-validator.ts). Each is used only while its source is unchanged; without this
// step both are compiled at run time, as before.
import { writeFileSync } from 'node:fs';
import { precompiledTemplates } from '../dist/src/compiler/render-sql.js';
import { PRECOMPILED_FILE } from '../dist/src/compiler/template-store.js';
import { PRECOMPILED_VALIDATOR_FILE, precompiledValidator } from '../dist/src/config/schema-validator.js';

writeFileSync(PRECOMPILED_FILE, precompiledTemplates());
writeFileSync(PRECOMPILED_VALIDATOR_FILE, precompiledValidator());
