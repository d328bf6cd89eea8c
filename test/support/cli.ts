/** Runs the built CLI (`node bin/run.js`) as a user would, capturing its output and exit code. */
import {spawn} from 'node:child_process'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const BIN = path.join(ROOT, 'bin', 'run.js')
export const FIXTURES = path.join(ROOT, 'test', 'fixtures')
export const TEAM_KEY = path.join(FIXTURES, 'keys', 'team.key')
export const TEAM_CERT = path.join(FIXTURES, 'keys', 'team.crt')
export const OTHER_KEY = path.join(FIXTURES, 'keys', 'other.key')
export const OTHER_CERT = path.join(FIXTURES, 'keys', 'other.crt')
export const TEAM_KID = 'd5326737ee564566'
/** Files written by other tools (sealed-secrets, sops, age): shared/interop beside the repository, as CI lays it out. */
export const INTEROP = path.resolve(ROOT, '..', 'shared', 'interop')

export interface RunResult {
  code: number
  stdout: string
  stderr: string
}

export interface RunOptions {
  input?: string | Buffer
  env?: Record<string, string | undefined>
  cwd?: string
  uid?: number
  gid?: number
  timeoutMs?: number
}

/** A clean environment: no keys found by accident in the developer's ~/.config. */
export function cleanEnv(extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: '/nonexistent-kseal-home',
    XDG_CONFIG_HOME: '/nonexistent-kseal-config',
    LANG: 'C.UTF-8',
  }
  return {...env, ...extra}
}

/** Runs a program, feeding `input` on stdin, and collects its output and exit code. */
export function run(command: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd ?? ROOT,
      env: (opts.env ?? cleanEnv()) as NodeJS.ProcessEnv,
      uid: opts.uid,
      gid: opts.gid,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({code: code ?? -1, stdout, stderr})
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(opts.input ?? '')
  })
}

/** Runs the built CLI. */
export function kseal(args: string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(process.execPath, [BIN, ...args], opts)
}
