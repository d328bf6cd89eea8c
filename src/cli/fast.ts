/**
 * The fast path (issue 13): `kseal decrypt`, `textconv`, `check` and `--version` without loading
 * oclif, whose full configuration (plugins, manifest, hooks) costs more than the work of one file.
 *
 * It runs a command line only when it can read it exactly as oclif would: the command's own flags
 * (from dist/cli/fast-spec.json, which the build writes from the command classes and refuses to
 * write for a flag or argument definition this parser does not model), each given once as `--name`
 * or `-c` with its value as the next word, positional words that do not start with `-` (or are `-`),
 * and nothing in the environment that oclif reads (its debug switches, directories, user plugins).
 * Anything else — `--help`, `--flag=value`, `-iq`, `--`, an unknown or repeated flag, a missing
 * argument, completion — returns false before anything observable has happened, and bin/run.js hands
 * the command line to oclif, which gives the help or the error. Both paths then run the same command
 * body (hot.ts) with the same CliContext; test/fast-path.test.ts runs both over a corpus of command
 * lines and compares stdout, stderr and the exit code.
 */
import {existsSync, readFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {provideLoginEnv} from './login-env.js'

export interface FlagSpec {
  name: string
  char?: string
  type: 'boolean' | 'option'
  multiple: boolean
}
export interface CommandSpec {
  strict: boolean
  flags: FlagSpec[]
  args: {name: string; required: boolean}[]
}
export interface FastSpec {
  /** oclif's config.name and config.version: the start of its user agent, which --version prints. */
  name: string
  version: string
  commands: Record<string, CommandSpec>
}

export interface Parsed {
  flags: Record<string, boolean | string | string[]>
  args: Record<string, string>
  argv: string[]
}

/** The commands the fast path runs (their bodies are in hot.ts). */
export const FAST_COMMANDS = ['decrypt', 'textconv', 'check'] as const

/** Parses argv (after the command id) as oclif would for this spec, or null for anything it does not model. */
export function parseFast(spec: CommandSpec, argv: string[]): Parsed | null {
  const flags: Parsed['flags'] = {}
  const rest: string[] = []
  const byName = new Map(spec.flags.map((f) => [f.name, f]))
  const byChar = new Map(spec.flags.filter((f) => f.char).map((f) => [f.char!, f]))
  // One step per word: the loop is bounded by argv's length.
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '') return null
    if (a === '-' || !a.startsWith('-')) {
      rest.push(a)
      continue
    }
    const f = a.startsWith('--') ? byName.get(a.slice(2)) : a.length === 2 ? byChar.get(a[1]) : undefined
    if (!f || (Object.hasOwn(flags, f.name) && !f.multiple)) return null
    if (f.type === 'boolean') {
      flags[f.name] = true
      continue
    }
    const value = argv[++i]
    if (value === undefined || value === '' || value.startsWith('-')) return null
    if (f.multiple) ((flags[f.name] ??= []) as string[]).push(value)
    else flags[f.name] = value
  }
  if (spec.strict && rest.length > spec.args.length) return null
  if (spec.args.some((a, i) => a.required && rest[i] === undefined)) return null
  const args: Record<string, string> = {}
  spec.args.forEach((a, i) => {
    if (rest[i] !== undefined) args[a.name] = rest[i]
  })
  return {flags, args, argv: rest}
}

/** kseal's own KSEAL_ variables; oclif reads others (KSEAL_DEBUG, KSEAL_DATA_DIR, KSEAL_REDIRECTED, …). */
const KSEAL_OWN = new Set(['KSEAL_KEYS', 'KSEAL_GPG', 'KSEAL_KMS_CONCURRENCY', 'KSEAL_KMS_TIMEOUT'])

/** Whether anything oclif reads besides the command line could change what it does: then oclif runs. */
function oclifWouldDiffer(env: NodeJS.ProcessEnv): boolean {
  if (env.DEBUG !== undefined || env.CLI_FLAGS_DEBUG !== undefined) return true
  if (env.NODE_ENV === 'development' || env.NODE_ENV === 'test') return true
  for (const k of Object.keys(env)) if (k.startsWith('OCLIF_') || (k.startsWith('KSEAL_') && !KSEAL_OWN.has(k))) return true
  try {
    process.cwd() // oclif warns when the current directory is gone
  } catch {
    return true
  }
  // User plugins, which oclif would load from its data directory.
  const data = env.XDG_DATA_HOME || path.join(env.HOME || os.homedir(), '.local', 'share')
  return existsSync(path.join(data, 'kseal', 'package.json'))
}

/** oclif's platform name is 'wsl' on WSL (told apart by the kernel, as its is-wsl does): there oclif answers --version. */
function isWsl(): boolean {
  if (process.platform !== 'linux') return false
  if (os.release().toLowerCase().includes('microsoft')) return true
  try {
    if (readFileSync('/proc/version', 'utf8').toLowerCase().includes('microsoft')) return true
  } catch {
    // as is-wsl: unreadable means not WSL
  }
  return existsSync('/proc/sys/fs/binfmt_misc/WSLInterop') || existsSync('/run/WSL')
}

export type Decision = {run: 'version'; text: string} | {run: (typeof FAST_COMMANDS)[number]; parsed: Parsed} | null

/**
 * What the fast path does with this command line in this environment: print the version, run a hot
 * command with these flags and arguments, or nothing (null: oclif runs it). Reads nothing but its
 * arguments and the file system's answer to oclifWouldDiffer.
 */
export function decide(argv: string[], env: NodeJS.ProcessEnv, spec: FastSpec): Decision {
  const id = argv[0]
  if (oclifWouldDiffer(env)) return null
  if (id === '--version') {
    if (argv.length !== 1 || os.arch() === 'ia32' || isWsl()) return null
    return {run: 'version', text: `${spec.name}/${spec.version} ${os.platform()}-${os.arch()} node-${process.version}\n`}
  }
  const hot = FAST_COMMANDS.find((c) => c === id)
  const cmd = hot && Object.hasOwn(spec.commands, hot) ? spec.commands[hot] : undefined
  const parsed = cmd && parseFast(cmd, argv.slice(1))
  return hot && parsed ? {run: hot, parsed} : null
}

/** Runs the command line on the fast path; false when oclif must (nothing has happened yet). */
export async function fastPath(argv: string[], spec: FastSpec): Promise<boolean> {
  // Before reading the environment, as src/cli/run.ts does before loading oclif (login-env.ts).
  provideLoginEnv()
  const d = decide(argv, process.env, spec)
  if (d === null) return false
  if (d.run === 'version') {
    process.stdout.write(d.text)
    return true
  }
  const [{CliContext}, hot] = await Promise.all([import('./context.js'), import('./hot.js')])
  const cli = new CliContext(argv.slice(1))
  // The flags' types are what the spec says; the build checked them against the command classes.
  const flags = d.parsed.flags as {'in-place'?: boolean; key?: string[]; quiet?: boolean; staged?: boolean}
  try {
    if (d.run === 'decrypt') await hot.runDecrypt(cli, flags, d.parsed.argv)
    else if (d.run === 'textconv') await hot.runTextconv(cli, flags, d.parsed.args.file)
    else await hot.runCheck(cli, flags, d.parsed.argv)
  } catch (e) {
    cli.fail(e as Error)
  } finally {
    await cli.close()
  }
  return true
}

/** See hot.ts warmUp: the build runs this before it writes the code cache. */
export async function warmUp(o: {key?: string; encrypted?: string} = {}): Promise<void> {
  const [{CliContext}, hot] = await Promise.all([import('./context.js'), import('./hot.js')])
  const cli = new CliContext([])
  await hot.warmUp(cli, o)
  await cli.close()
}

/** The stream warmUp reads (the build encrypts it to a key of its own, to warm the decryption up too). */
export async function warmUpSample(): Promise<string> {
  return (await import('./hot.js')).WARM_UP_SAMPLE
}
