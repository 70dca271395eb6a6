import type { Command } from 'commander';
import { withCommonOptions } from '../context.js';
import type { CliContext } from '../context.js';
import { verifyText } from '../verify-output.js';

export function registerVerify(program: Command, ctx: CliContext): void {
  withCommonOptions(program.command('verify'))
    .description('compare both databases table by table (checksums over key buckets), name the drifted keys; exit 1 on drift; writes nothing')
    .option('--table <names...>', 'only these tables (config names)')
    .action(async (flags: { table?: string[] }, command: Command) => {
      const logger = ctx.logger(command);
      const config = await ctx.config(command);
      const { verifyCommand } = await import('../../commands/verify.js');
      const report = await verifyCommand(config, { tables: flags.table ?? [], logger });
      if (ctx.json) ctx.printJson(report);
      else ctx.print(verifyText(report));
      ctx.exit(report.exitCode);
    });
}
