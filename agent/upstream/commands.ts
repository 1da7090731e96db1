/**
 * The controller's commands (docs/protocol.md, "What the agent MUST do with a valid command, in order"): the link
 * (./link.ts) hands each valid command to `UpstreamCommands.handle` while streaming, and sends what it answers.
 *
 * In order: a known command_id answers its stored result with `repeat: true` and runs nothing (results are in the
 * store: across links and restarts); an older generation is refused (PROTO_ERR_STALE_GENERATION, not stored), a
 * newer one stored (durably) first; an engine that is not ready yet refuses (AGENT_ERR_NOT_READY, retryable, not
 * stored: the REST API's 503); else the op runs through the same engine method as its REST call
 * (./commands-instance.ts, ./commands-fleet.ts), whose `record` callback stores the result inside the acceptance's
 * transaction: one commit holds both or neither. A refusal by the rules (an AgentError) is a result, stored in its
 * own transaction; a store failure is not: `error` PROTO_ERR_INTERNAL, nothing stored.
 *
 * A command's body is never logged (it may carry a password_hash): only op, command_id and status.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/types.js';
import { isAgentError } from '../errors.js';
import type { Engine } from '../operations/engine.js';
import type { Store } from '../store/types.js';
import { runFleetCommand } from './commands-fleet.js';
import { runInstanceCommand } from './commands-instance.js';
import { CONTROLLER_USER, type OpRun, type ResultFields } from './commands-op.js';
import { MAX_TEXT, PROTOCOL_VERSION, type Command, type CommandBody, type CommandResult, type ErrorMessage } from './protocol.js';
import { errorFor } from './parse.js';
import { raiseGeneration, readGeneration, type CommandHandler } from './types.js';

export { CONTROLLER_PROJECT, CONTROLLER_USER, type OpRun, type ResultFields } from './commands-op.js';

export interface CommandDeps {
  engine: Engine;
  store: Store;
  config: () => Config;
  log: Logger;
  /** The current time, ISO 8601 (the stored result's created_at). */
  now: () => string;
}

/** The ids a refusal names: those of the command, as far as it names them. */
function refsOf(body: CommandBody): { instance_id: string | null; node_id: string | null } {
  const b = body as { instance_id?: string; node_id?: string; node?: { id?: string } };
  const node = b.node_id ?? b.node?.id;
  return { instance_id: b.instance_id?.toLowerCase() ?? null, node_id: typeof node === 'string' ? node.toLowerCase() : null };
}

export class UpstreamCommands implements CommandHandler {
  /** Commands running now, by command_id: a second arrival of one waits for the first and gets its stored result. */
  private readonly running = new Map<string, Promise<unknown>>();

  constructor(private readonly d: CommandDeps) {}

  async handle(cmd: Command): Promise<CommandResult | ErrorMessage> {
    const id = cmd.command_id;
    for (let earlier = this.running.get(id); earlier !== undefined; earlier = this.running.get(id)) await earlier.catch(() => undefined);
    const run = this.run(cmd).catch((e: unknown) => this.internal(cmd, e));
    this.running.set(id, run);
    try {
      const answer = await run;
      this.d.log.info({ command_id: id, op: cmd.command.op, status: answer.type === 'error' ? `error ${answer.code}` : answer.status, repeat: answer.type === 'error' ? false : answer.repeat }, 'upstream command');
      return answer;
    } finally {
      if (this.running.get(id) === run) this.running.delete(id);
    }
  }

  private async run(cmd: Command): Promise<CommandResult | ErrorMessage> {
    const { store } = this.d;
    const stored = store.getCommandResult(cmd.command_id);
    if (stored) return this.message(cmd, stored.result, true);
    const held = readGeneration(store);
    if (cmd.generation < held) {
      return this.unstored(cmd, 'PROTO_ERR_STALE_GENERATION', `generation ${cmd.generation} is older than the agent's ${held}: refused, not stored`, false);
    }
    await raiseGeneration(store, cmd.generation);
    const ready = this.d.engine.ready();
    if (!ready.ready) {
      return this.unstored(cmd, 'AGENT_ERR_NOT_READY', `the agent is not ready: ${ready.reasons.join('; ')}`, true);
    }
    let written: CommandResult | null = null;
    const op: OpRun = {
      d: this.d,
      cmd,
      ctx: (projectId, userId) => ({ request_id: cmd.command_id, project_id: projectId, user_id: userId ?? CONTROLLER_USER, roles: ['admin'], is_admin: true }),
      record: (fields) => {
        const result = this.result(cmd, fields, null);
        this.put(cmd, result);
        written = result;
      },
    };
    try {
      await this.dispatch(op);
      // Every op records its result or throws; one that did neither is a bug, answered as an internal error.
      const result = written as CommandResult | null;
      if (result === null) throw new Error(`op ${cmd.command.op} recorded no result`);
      return result;
    } catch (e) {
      if (!isAgentError(e)) throw e;
      // Committed before the refusal was thrown (not expected): the stored result stands.
      const after = store.getCommandResult(cmd.command_id);
      if (after) return this.message(cmd, after.result, false);
      const refused = this.result(cmd, { status: 'refused', ...refsOf(cmd.command) }, { code: e.code, message: e.message, retryable: e.retryable });
      store.transaction(() => this.put(cmd, refused));
      return refused;
    }
  }

  private dispatch(op: OpRun): Promise<void> {
    const body = op.cmd.command;
    switch (body.op) {
      case 'instance.create':
      case 'instance.delete':
      case 'instance.power':
      case 'instance.operation':
        return runInstanceCommand(op, body);
      default:
        return runFleetCommand(op, body);
    }
  }

  private result(cmd: Command, f: ResultFields, error: CommandResult['error']): CommandResult {
    return {
      type: 'command-result',
      version: PROTOCOL_VERSION,
      command_id: cmd.command_id,
      status: f.status,
      repeat: false,
      request_id: f.request_id ?? null,
      instance_id: f.instance_id ?? null,
      node_id: f.node_id ?? null,
      already: f.already ?? false,
      error: error === null ? null : { ...error, message: error.message.slice(0, MAX_TEXT) },
    };
  }

  private put(cmd: Command, r: CommandResult): void {
    const { type: _type, version: _version, repeat: _repeat, ...result } = r;
    this.d.store.putCommandResult({ command_id: cmd.command_id, op: cmd.command.op, result, created_at: this.d.now() });
  }

  /** A stored result as the message it was, with `repeat`. */
  private message(cmd: Command, result: Record<string, unknown>, repeat: boolean): CommandResult {
    return { ...(result as Omit<CommandResult, 'type' | 'version' | 'repeat'>), type: 'command-result', version: PROTOCOL_VERSION, command_id: cmd.command_id, repeat };
  }

  /** A refusal that is not stored: it says nothing about the command (its sender, the agent's start-up). */
  private unstored(cmd: Command, code: NonNullable<CommandResult['error']>['code'], message: string, retryable: boolean): CommandResult {
    return this.result(cmd, { status: 'refused', ...refsOf(cmd.command) }, { code, message, retryable });
  }

  /** The store (or a bug) failed: nothing is stored; the controller sends the command again later. */
  private internal(cmd: Command, e: unknown): ErrorMessage {
    const why = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
    this.d.log.error({ command_id: cmd.command_id, op: cmd.command.op, err: e }, 'upstream command failed: nothing stored');
    return errorFor({
      code: 'PROTO_ERR_INTERNAL',
      message: `command ${cmd.command_id} (${cmd.command.op}) failed, nothing stored; send it again later: ${why}`,
      path: null,
      in_reply_to: { type: 'command', seq: null, command_id: cmd.command_id },
    });
  }
}
