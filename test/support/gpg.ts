/**
 * A throw-away GnuPG home for tests that drive the real `gpg`: keys imported from fixtures, its own
 * gpg-agent (started by gpg on first use), and `close()` that stops that agent and removes the home.
 * Tests pass `env` to kseal (the injected BackendContext) and to the gpg they run themselves.
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {FIXTURES, INTEROP} from './cli.js'

/** The sops project's test keys: secret keys 1 and 2 (no passphrase) and the public key 3. */
export const SOPS_PGP_KEYS = path.join(INTEROP, 'sops', 'getsops-sops', 'keys', 'sops_functional_tests_key.asc')
export const SOPS_KEY_1 = 'FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4'
export const SOPS_KEY_2 = 'D7229043384BCC60326C6FB9D8720D957C3D3074'
/** Only its public key is in the file: kseal can encrypt for it, never decrypt. */
export const SOPS_KEY_3 = 'B611A2F9F11D0FF82568805119F9B5DAEA91FF86'
/** An ed25519/cv25519 key made for kseal's tests, its secret protected by PASSPHRASE_KEY_PASSPHRASE. */
export const PASSPHRASE_KEY = path.join(FIXTURES, 'keys', 'pgp-passphrase.asc')
export const PASSPHRASE_KEY_FPR = '703C75B5EC2E1FF033D32E31A7200E028DBA9C80'
export const PASSPHRASE_KEY_PASSPHRASE = 'kseal-test-passphrase'

export interface GpgHome {
  dir: string
  /** An environment for kseal and for gpg: GNUPGHOME set, nothing else of the developer's. */
  env: Record<string, string | undefined>
  /** Runs the real gpg in this home; throws with its stderr when it fails. */
  gpg(args: string[], input?: Buffer | string): Buffer
  /** gpg's result without throwing: exit code, stdout, stderr. */
  tryGpg(args: string[], input?: Buffer | string): {status: number | null; stdout: Buffer; stderr: string}
  /** Makes gpg-agent answer passphrase prompts through a scripted pinentry that types `pin` (or fails when null). */
  pinentry(pin: string | null): void
  close(): void
}

export function gpgHome(keys: string[] = [SOPS_PGP_KEYS]): GpgHome {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-gpg-'))
  const env: Record<string, string | undefined> = {PATH: process.env.PATH, GNUPGHOME: dir, HOME: dir, LANG: 'C.UTF-8'}
  const tryGpg = (args: string[], input?: Buffer | string) => {
    const r = spawnSync('gpg', ['--batch', ...args], {env: env as NodeJS.ProcessEnv, input: input ?? ''})
    return {status: r.status, stdout: r.stdout, stderr: r.stderr.toString()}
  }
  const gpg = (args: string[], input?: Buffer | string) => {
    const r = tryGpg(args, input)
    if (r.status !== 0) throw new Error(`gpg ${args.join(' ')} failed: ${r.stderr}`)
    return r.stdout
  }
  for (const k of keys) gpg(['--quiet', '--import', k])
  const killAgent = () => spawnSync('gpgconf', ['--kill', 'gpg-agent'], {env: env as NodeJS.ProcessEnv})
  return {
    dir,
    env,
    gpg,
    tryGpg,
    pinentry(pin) {
      // A pinentry speaks the Assuan protocol on stdin/stdout: OK to everything, D <pin> to GETPIN.
      const script = path.join(dir, 'pinentry.sh')
      const answer = pin === null ? 'echo "ERR 83886179 Operation cancelled"' : `printf 'D %s\\nOK\\n' '${pin}'`
      writeFileSync(
        script,
        `#!/bin/sh\necho "OK ready"\nwhile read -r cmd rest; do\n  case "$cmd" in\n    GETPIN) ${answer};;\n    BYE) echo OK; exit 0;;\n    *) echo OK;;\n  esac\ndone\n`,
        {mode: 0o700},
      )
      writeFileSync(path.join(dir, 'gpg-agent.conf'), `pinentry-program ${script}\n`)
      killAgent() // the next gpg call starts an agent that reads the new configuration
    },
    close() {
      killAgent()
      rmSync(dir, {recursive: true, force: true})
    },
  }
}
