/**
 * `kseal keygen`: an RSA key pair for the local backend. node:crypto makes the key (fast, native);
 * node-forge only builds and signs the self-signed X.509 certificate that recipients point at.
 */
import crypto from 'node:crypto'
import {promises as fs} from 'node:fs'
import path from 'node:path'
import {promisify} from 'node:util'
import {rsaKid, selfSignedCert} from '../../keys/rsa.js'
import {ioError, KsealError} from '../core/errors.js'

export interface KeygenOptions {
  dir: string
  name: string
  bits: number
  days: number
  force: boolean
  now?: Date
}

export interface KeygenResult {
  kid: string
  keyFile: string
  certFile: string
  notAfter: Date
}

export async function keygen(o: KeygenOptions): Promise<KeygenResult> {
  if (!/^[A-Za-z0-9._-]+$/.test(o.name))
    throw new KsealError('ERR_USAGE', `--name ${JSON.stringify(o.name)}: use letters, digits, '.', '_' or '-'`)
  if (o.bits < 2048 || o.bits > 16384 || o.bits % 8 !== 0)
    throw new KsealError('ERR_USAGE', '--bits must be a multiple of 8 from 2048 to 16384')
  if (o.days < 1) throw new KsealError('ERR_USAGE', '--days must be at least 1')
  const keyFile = path.join(o.dir, `${o.name}.key`)
  const certFile = path.join(o.dir, `${o.name}.crt`)
  if (!o.force) {
    for (const f of [keyFile, certFile]) {
      if (
        await fs.stat(f).then(
          () => true,
          () => false,
        )
      ) {
        throw new KsealError('ERR_USAGE', `${f} already exists; pass --force to replace it`)
      }
    }
  }
  await fs.mkdir(o.dir, {recursive: true, mode: 0o700}).catch((e) => {
    throw ioError(e, o.dir, 'create')
  })
  const {privateKey} = await promisify(crypto.generateKeyPair)('rsa', {modulusLength: o.bits})
  const now = o.now ?? new Date()
  const certPem = await selfSignedCert(privateKey, `kseal ${o.name}`, now, o.days)
  const keyPem = privateKey.export({type: 'pkcs8', format: 'pem'}) as string
  await writeNew(keyFile, keyPem, 0o600)
  await writeNew(certFile, certPem, 0o644)
  return {kid: rsaKid(crypto.createPublicKey(privateKey)), keyFile, certFile, notAfter: new Date(now.getTime() + o.days * 86_400_000)}
}

/** Writes a file that is never readable by others, not even for a moment (created with its mode). */
async function writeNew(file: string, text: string, mode: number): Promise<void> {
  try {
    await fs.rm(file, {force: true})
    const fh = await fs.open(file, 'wx', mode)
    try {
      await fh.writeFile(text)
      await fh.chmod(mode)
      await fh.sync()
    } finally {
      await fh.close()
    }
  } catch (e) {
    throw ioError(e, file, 'write')
  }
}
