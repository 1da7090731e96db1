/** metalctl's `agent` commands: `agent status` (readiness, the ICMP engine, the upstream link), from /readyz. */
import type { Command } from 'commander';
import { EXIT_ERROR, EXIT_OK, type ActionOf } from './context.js';
import { formatKeyValue } from './format.js';

export function registerAgentCommands(program: Command, action: ActionOf): void {
  const agent = program.command('agent').description('the agent itself');

  agent
    .command('status')
    .description("readiness, the ICMP engine, and the upstream link to the controller (state, last ack, what it lacks); exit 1 when not ready")
    .action(
      action(async (ctx) => {
        const res = await (await ctx.client()).readiness();
        const r = res.body;
        if (ctx.json) ctx.raw(res);
        else {
          const pairs: [string, unknown][] = [
            ['ready', r.status === 'ready' ? 'yes' : `no: ${r.reasons.join('; ')}`],
            ['liveness engine', r.liveness ? `${r.liveness.engine} (${r.liveness.reason})` : null],
          ];
          const u = r.upstream;
          if (u === undefined || u.state === 'disabled') pairs.push(['upstream', 'none (standalone: no upstream.url)']);
          else {
            const lacks = u.last_ack_seq === null ? u.last_seq : u.last_seq - u.last_ack_seq;
            pairs.push(
              ['upstream', u.url],
              ['link state', `${u.state} since ${u.since}`],
              ['last ack', u.last_ack_seq === null ? 'none since start' : `seq ${u.last_ack_seq} at ${u.last_ack_at ?? '?'}`],
              ['journal last seq', u.last_seq],
              ['not acked', lacks],
              ['sent on this link', u.sent_seq],
              ['generation', u.generation],
              ['links welcomed', u.welcomes],
              ['failed attempts', u.attempts],
              ['last error', u.last_error],
            );
          }
          ctx.out(formatKeyValue(pairs));
        }
        return r.status === 'ready' ? EXIT_OK : EXIT_ERROR;
      }),
    );
}
