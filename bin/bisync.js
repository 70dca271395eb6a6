#!/usr/bin/env node
// Whatever escapes the command (an 'error' event nobody listened to, a rejected promise, a throw in a
// callback) still ends as one line and an exit code of SPEC §3, never as a stack trace (unless
// --log-level debug). Exiting runs the embedded servers' cleanup (src/embedded/leave-nothing-behind.ts).
const argv = process.argv;
let report = (error) => {
  process.stderr.write(`error: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n`);
  return 1;
};
let ending = false;
const end = async (code) => {
  // Let everything written reach the pipe, then exit with the code explicitly.
  const flushed = (stream) => new Promise((resolve) => stream.write('', resolve));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(code);
};
const fatal = (error) => {
  if (ending) return;
  ending = true;
  void end(report(error));
};
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);
// `bisync plan | head`: the reader has gone, so there is nobody left to tell; end quietly.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error) => {
    if (error?.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    else fatal(error);
  });
}

let cli;
try {
  cli = await import('../dist/src/cli/main.js');
} catch (error) {
  const missing = error?.code === 'ERR_MODULE_NOT_FOUND' && String(error?.message).includes('dist/src/cli/main.js');
  process.stderr.write(
    missing
      ? 'error: bisync is not built (dist/ is missing)\n  hint: run npm run build (npm ci does it too), then try again\n'
      : `error: bisync could not load: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}\n  hint: reinstall the dependencies: npm ci\n`,
  );
  await end(2);
}
report = (error) => cli.reportError(error, { json: argv.includes('--json'), debug: cli.wantsStack(argv) });
const code = await cli.main(argv);
if (!ending) await end(code);
