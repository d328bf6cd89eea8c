/**
 * Runs once before the suite. git does not keep file modes other than the executable bit, so in a
 * fresh clone the committed test keys are 0644 — which kseal rightly refuses, as ssh does. Give
 * every private key fixture the mode a real key file has.
 */
import {chmodSync, readdirSync, readFileSync, statSync} from 'node:fs'
import path from 'node:path'
import {fileURLToPath} from 'node:url'

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures')
const PRIVATE = /BEGIN (RSA |EC |OPENSSH |ENCRYPTED )?PRIVATE KEY|AGE-SECRET-KEY-1/

function walk(dir: string): string[] {
  return readdirSync(dir, {withFileTypes: true}).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)]))
}

export default function globalSetup(): void {
  for (const file of walk(FIXTURES)) {
    if (statSync(file).size < 64 * 1024 && PRIVATE.test(readFileSync(file, 'utf8'))) chmodSync(file, 0o600)
  }
}
