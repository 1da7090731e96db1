#!/usr/bin/env node
/**
 * metalctl: the operator's command line of metald, a pure HTTP client of its local REST API (docs/cli.md).
 *
 * `run(argv, io)` is the whole program and returns the exit code, so every command is testable in-process; the
 * executable part at the bottom only wires it to `process`. Exit codes: 0 success, 1 API or connection error or an
 * operation that ended in error, 2 usage error, 3 `--wait` gave up (the operation goes on in metald).
 *
 * Secrets never come from argv (argv is readable by every user of the host through ps and /proc): the API token
 * comes from a file or the environment; password hashes, SSH keys and user data come from files.
 */
import { realpath } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { ApiError, ConnectionError } from './client.js';
import { positiveSeconds } from './args.js';
import { registerAgentCommands } from './commands-agent.js';
import { registerInstanceCommands } from './commands-instance.js';
import { registerNodeCommands } from './commands-node.js';
import { registerPingCommand, runPing } from './ping.js';
import { Ctx, DEFAULT_URL, EXIT_ERROR, EXIT_OK, EXIT_USAGE, UsageError, type ActionOf, type CliIo, type GlobalOpts } from './context.js';
import { escapeControl } from './format.js';

export { DEFAULT_URL, EXIT_ERROR, EXIT_OK, EXIT_USAGE, EXIT_WAIT_TIMEOUT, UsageError, type CliIo } from './context.js';

/** Options that would put a secret on argv: refused before parsing, without echoing the value. */
const SECRET_OPTIONS: Record<string, string> = {
  '--token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--auth-token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--os-token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--x-auth-token': 'use --token-file PATH, METALCTL_TOKEN_FILE or METALCTL_TOKEN',
  '--password': 'use --password-hash-file FILE',
  '--password-hash': 'use --password-hash-file FILE',
  '--user-data': 'use --user-data-file FILE',
};

const HELP_AFTER = `
Authentication:
  The API token is read from --token-file PATH, else from the file named by METALCTL_TOKEN_FILE, else from the
  environment variable METALCTL_TOKEN. There is deliberately no option that takes the token itself: a command line
  is visible to every user of the host (ps, /proc/PID/cmdline). Password hashes, SSH keys and user data are read
  from files for the same reason.

Environment:
  METALCTL_URL, METALCTL_PROJECT, METALCTL_TOKEN_FILE, METALCTL_TOKEN

Exit codes:
  0 success, 1 API or connection error or the awaited operation failed, 2 usage error, 3 --wait timed out
  (metalctl ping has fping's: 0 all alive, 1 some unreachable, 2 a name not found, 3 bad arguments, 4 system error)
`;

function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const program = new Command('metalctl');
  program
    .description("metald's command line: instances, their power and OS operations, liveness, and nodes")
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void io.stdout.write(s),
      writeErr: (s) => void io.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)')
    .option('--url <url>', `API base URL (env METALCTL_URL; default ${DEFAULT_URL})`)
    .option('--token-file <path>', 'file holding the API token (env METALCTL_TOKEN_FILE, or the token in METALCTL_TOKEN); never on argv')
    .option('--project <id>', 'project id for project-scoped commands (env METALCTL_PROJECT)')
    .option('--json', "print the API's JSON as is, for scripts")
    .option('--timeout <seconds>', 'deadline of each HTTP request', positiveSeconds, 30)
    .addHelpText('after', HELP_AFTER);


  /** Wraps a handler as a commander action: positional args, then the command's options merged with the globals. */
  const action: ActionOf =
    (fn) =>
    async (...args: unknown[]): Promise<void> => {
      const cmd = args[args.length - 1] as Command;
      const opts = cmd.optsWithGlobals<GlobalOpts & Record<string, unknown>>();
      const positional = args.slice(0, -2).filter((a): a is string => typeof a === 'string');
      setExit(await fn(new Ctx(io, opts), positional, opts));
    };

  registerInstanceCommands(program, action);
  registerNodeCommands(program, action);
  registerAgentCommands(program, action);
  registerPingCommand(program);
  return program;
}

/** Refuses secrets on argv before anything is parsed, without echoing them. */
function checkNoSecretOnArgv(argv: string[]): string | undefined {
  for (const arg of argv) {
    if (arg === '--') return undefined;
    const name = arg.split('=', 1)[0] as string;
    const hint = SECRET_OPTIONS[name];
    if (hint !== undefined) {
      return `${name} is refused: secrets never go on the command line (any user can read it with ps); ${hint}`;
    }
  }
  return undefined;
}

/**
 * Runs metalctl with `argv` (without the node and script paths) against `io`.
 * @returns the process exit code (0 ok, 1 error, 2 usage, 3 wait timed out); never throws.
 */
export async function run(argv: string[], io: CliIo): Promise<number> {
  if (argv[0] === 'ping') return runPing(argv.slice(1), io);
  const secret = checkNoSecretOnArgv(argv);
  if (secret !== undefined) {
    io.stderr.write(`error: ${secret}\n`);
    return EXIT_USAGE;
  }
  let code = EXIT_OK;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    if (err instanceof UsageError) {
      io.stderr.write(`error: ${escapeControl(err.message)}\n`);
      return EXIT_USAGE;
    }
    if (err instanceof ApiError) {
      const rid = err.requestId ? `, request ${escapeControl(err.requestId)}` : '';
      io.stderr.write(`error: ${escapeControl(err.message)} (HTTP ${err.status}${rid})\n`);
      return EXIT_ERROR;
    }
    if (err instanceof ConnectionError) {
      io.stderr.write(`error: ${escapeControl(err.message)}\n`);
      return EXIT_ERROR;
    }
    io.stderr.write(`error: ${escapeControl(err instanceof Error ? err.message : String(err))}\n`);
    return EXIT_ERROR;
  }
}

// ---------------------------------------------------------------- executable

async function isMain(): Promise<boolean> {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return (await realpath(entry)) === (await realpath(fileURLToPath(import.meta.url)));
  } catch {
    return false;
  }
}

if (await isMain()) {
  // `metalctl ... | head` closes stdout early: that is not an error.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, stdin: process.stdin });
}
