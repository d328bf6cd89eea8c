/** What every file-based backend does with its key files: find them, read them, guard them. */
import {statSync} from 'node:fs'
import path from 'node:path'
import {keyFileError, KsealError} from '../src/core/errors.js'
import {readText} from '../src/core/files.js'
import type {BackendContext} from './types.js'

/** Key files are told apart by content: a PEM private key (also a passphrase-protected one, so the
 * RSA backend can say it is not supported) or an age identity file, as age-keygen writes it. */
export const isRsaKeyFile = (text: string): boolean => /-----BEGIN (RSA |ENCRYPTED )?PRIVATE KEY-----/.test(text)
export const isAgeKeyFile = (text: string): boolean => /^AGE-SECRET-KEY-1/m.test(text)

/** A key path from a URI or flag: `~/` means the injected HOME, relative paths the injected cwd. */
export function keyPath(rest: string, ctx: BackendContext): string {
  const home = ctx.env.HOME
  return path.resolve(ctx.cwd, home ? rest.replace(/^~(?=\/)/, home) : rest)
}

/** A key file's text; a failure names the path. */
export const readKeyFile = (file: string): Promise<string> => readText(file, {keyFile: true})

/** Refuses a private key that group or others may read, as ssh does. */
export async function checkPrivateMode(file: string): Promise<void> {
  let mode: number
  try {
    mode = statSync(file).mode
  } catch (e) {
    throw keyFileError(e, file)
  }
  if (process.platform !== 'win32' && (mode & 0o077) !== 0) {
    const m = (mode & 0o777).toString(8).padStart(4, '0')
    throw new KsealError('ERR_KEY_PERMISSIONS', `${file}: private key is readable by others (mode ${m}); run: chmod 600 ${file}`)
  }
}
