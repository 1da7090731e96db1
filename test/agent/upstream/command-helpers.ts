/** Helpers of the upstream command tests: a handler on a harness agent, commands checked against the protocol. */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { expect } from 'vitest';
import { UpstreamCommands } from '../../../agent/upstream/commands.js';
import { type Command, type CommandBody, type CommandResult, type ErrorMessage } from '../../../agent/upstream/protocol.js';
import { parseMessage } from '../../../agent/upstream/parse.js';
import type { Agent } from '../../../agent/build-agent.js';

export const newCommandId = (): string => `req-${randomUUID()}`;

/** A command the protocol's reader accepts (the test fails on one it refuses). */
export function command(body: CommandBody, opts: { generation?: number; id?: string } = {}): Command {
  const cmd: Command = { type: 'command', version: 1, command_id: opts.id ?? newCommandId(), generation: opts.generation ?? 1, command: body };
  const parsed = parseMessage(JSON.stringify(cmd), { from: 'controller' });
  if (!parsed.ok) throw new Error(`test command invalid: ${parsed.message}`);
  return cmd;
}

/** Log lines written by a handler, as text. */
export class LogLines {
  readonly lines: string[] = [];
  readonly log: Logger = pino(
    { level: 'info' },
    new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        this.lines.push(chunk.toString('utf8'));
        cb();
      },
    }),
  );
}

export function handlerOf(agent: Agent, log: Logger = pino({ level: 'silent' })): UpstreamCommands {
  return new UpstreamCommands({ engine: agent.engine, store: agent.store, config: () => agent.config(), log, now: () => new Date().toISOString() });
}

/** Runs a command; the answer must be valid for the protocol (from the agent). */
export async function send(handler: UpstreamCommands, cmd: Command): Promise<CommandResult | ErrorMessage> {
  const answer = await handler.handle(cmd);
  const parsed = parseMessage(JSON.stringify(answer), { from: 'agent' });
  expect(parsed.ok ? 'valid' : parsed.message).toBe('valid');
  return answer;
}

/** Runs a command that must get a command-result. */
export async function result(handler: UpstreamCommands, cmd: Command): Promise<CommandResult> {
  const answer = await send(handler, cmd);
  if (answer.type !== 'command-result') throw new Error(`expected a command-result, got error ${answer.code}: ${answer.message}`);
  return answer;
}
