/** Library-level key set-up for tests: the fixture keys through the real backend registry and keyring. */
import {Backends} from '../../keys/index.js'
import type {Recipient} from '../../keys/types.js'
import {Keyring} from '../../src/keyring/keyring.js'
import {OTHER_CERT, OTHER_KEY, TEAM_CERT, TEAM_KEY} from './cli.js'

export function testBackends(): Backends {
  return new Backends({env: {}, cwd: process.cwd(), now: () => new Date()})
}

export function keyringFor(backends: Backends, keys: string[] = [TEAM_KEY]): Keyring {
  return new Keyring(backends, {keys, env: {XDG_CONFIG_HOME: '/nonexistent-kseal-config'}})
}

export async function teamRecipient(backends: Backends): Promise<Recipient> {
  return backends.recipient(`rsa:${TEAM_CERT}`)
}

export async function otherRecipient(backends: Backends): Promise<Recipient> {
  return backends.recipient(`rsa:${OTHER_CERT}`)
}

export {OTHER_KEY, TEAM_KEY}
