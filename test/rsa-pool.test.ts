/** The RSA decryption pool: inline for a few unwraps, worker threads for a burst, same results. */
import crypto from 'node:crypto'
import {readFileSync} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {RsaDecryptPool} from '../keys/rsa-pool.js'
import {OTHER_KEY} from './support/cli.js'

const key = crypto.createPrivateKey(readFileSync(OTHER_KEY))
const pub = crypto.createPublicKey(key)
const k = {kid: 'other', key}
const label = Buffer.from('label')
const wrap = (dk: Buffer, l = label) =>
  crypto.publicEncrypt({key: pub, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: l}, dk)

describe('RsaDecryptPool', () => {
  it('runs a few unwraps inline, without starting threads', async () => {
    const pool = new RsaDecryptPool(2)
    const dks = [crypto.randomBytes(32), crypto.randomBytes(32)]
    const out = await Promise.all(dks.map((dk) => pool.decrypt(k, wrap(dk), label)))
    expect(out).toEqual(dks)
    expect(pool.threadsStarted).toBe(0)
    await pool.close()
  })

  it('moves a burst of unwraps issued one after another to worker threads, with the same results', async () => {
    const pool = new RsaDecryptPool(2)
    const dks = Array.from({length: 24}, () => crypto.randomBytes(32))
    // Issued the way the pipeline issues them: each after an await, never all in one call.
    const out = await Promise.all(
      dks.map(async (dk) => {
        await Promise.resolve()
        return pool.decrypt(k, wrap(dk), label)
      }),
    )
    expect(out).toEqual(dks)
    expect(pool.threadsStarted).toBe(2)
    // Wrong label or altered ciphertext: null, in a worker as inline.
    const bad = await Promise.all(
      Array.from({length: 10}, () => pool.decrypt(k, wrap(crypto.randomBytes(32), Buffer.from('other')), label)),
    )
    expect(bad.every((b) => b === null)).toBe(true)
    await pool.close()
  })
})
