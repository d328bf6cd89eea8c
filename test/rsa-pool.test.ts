/** The RSA decryption pool: inline for a few unwraps, worker threads for a burst, same results. */
import crypto from 'node:crypto'
import {readFileSync, stat} from 'node:fs'
import {describe, expect, it} from '@jest/globals'
import {RsaDecryptPool, threadPoolSize} from '../keys/rsa-pool.js'
import {OTHER_KEY, TEAM_KEY} from './support/cli.js'
import {sleep, until} from './support/until.js'

const key = crypto.createPrivateKey(readFileSync(OTHER_KEY))
const pub = crypto.createPublicKey(key)
const k = {kid: 'other', key}
const label = Buffer.from('label')
const wrap = (dk: Buffer, l = label) =>
  crypto.publicEncrypt({key: pub, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: l}, dk)

describe('RsaDecryptPool', () => {
  /** A burst issued the way the pipeline issues it: each after an await. */
  const burst = (pool: RsaDecryptPool, dks: Buffer[]) =>
    Promise.all(
      dks.map(async (dk) => {
        await Promise.resolve()
        return pool.decrypt(k, wrap(dk), label)
      }),
    )

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
    expect(await burst(pool, dks)).toEqual(dks)
    expect(pool.threadsStarted).toBe(2)
    // Wrong label or altered ciphertext: null, in a worker as inline.
    const bad = await Promise.all(
      Array.from({length: 10}, () => pool.decrypt(k, wrap(crypto.randomBytes(32), Buffer.from('other')), label)),
    )
    expect(bad.every((b) => b === null)).toBe(true)
    await pool.close()
  })

  it('stops its threads when idle (a long-running controller gives their memory back), and starts them again for the next burst', async () => {
    const pool = new RsaDecryptPool(2, 50)
    const dks = Array.from({length: 16}, () => crypto.randomBytes(32))
    expect(await burst(pool, dks)).toEqual(dks)
    expect(pool.threadsStarted).toBe(2)
    await until(() => pool.threadsStarted === 0, 'the idle threads to stop')
    const again = Array.from({length: 16}, () => crypto.randomBytes(32))
    expect(await burst(pool, again)).toEqual(again)
    expect(pool.threadsStarted).toBe(2)
    await pool.close()
  })

  it('loses no unwrap when a worker dies mid-burst: what it held is answered inline', async () => {
    const pool = new RsaDecryptPool(2)
    const dks = Array.from({length: 40}, () => crypto.randomBytes(32))
    const out = burst(pool, dks)
    await until(() => pool.threadsStarted === 2, 'the threads to start')
    // As when a worker exceeds its memory limit: it exits with jobs in its queue.
    await (pool as unknown as {workers: {w: {terminate(): Promise<number>}}[]}).workers[0]!.w.terminate()
    expect(await out).toEqual(dks)
    expect(pool.threadsStarted).toBe(1)
    await pool.close()
  })
})

describe('a bulk run gets the RSA threads going when it loads its key', () => {
  it('Keyring.prepare loads the first key source, and the RSA backend starts its threads then (BackendContext.bulk)', async () => {
    const {Backends} = await import('../keys/index.js')
    const {Keyring} = await import('../src/keyring/keyring.js')
    const env = {XDG_CONFIG_HOME: '/nonexistent-kseal-config'}
    const started = async (bulk: boolean) => {
      const backends = new Backends({env: {}, cwd: process.cwd(), now: () => new Date(), bulk})
      await new Keyring(backends, {keys: [OTHER_KEY], env}).prepare()
      const rsa = (await backends.get('rsa')) as unknown as {pool: RsaDecryptPool}
      // The threads start in the background; without bulk they never do (give them the same chance).
      const threads = await until(() => rsa.pool.threadsStarted, 'the threads to start', bulk ? 10_000 : 200).catch(() => 0)
      await backends.close()
      return threads
    }
    expect(await started(false)).toBe(0)
    expect(await started(true)).toBeGreaterThan(0)
  })

  it('a key source that cannot load fails at the first unwrap, as without prepare; a run that unwraps nothing never hears of it', async () => {
    const {Backends} = await import('../keys/index.js')
    const {Keyring} = await import('../src/keyring/keyring.js')
    const backends = new Backends({env: {}, cwd: process.cwd(), now: () => new Date(), bulk: true})
    const keyring = new Keyring(backends, {keys: ['/nonexistent/key.pem'], env: {XDG_CONFIG_HOME: '/nonexistent-kseal-config'}})
    await expect(keyring.prepare()).resolves.toBeUndefined()
    await expect(keyring.unwrap([{backend: 'rsa', kid: 'x', wrapped: 'AA=='}], {label: Buffer.from('l'), context: {}})).rejects.toThrow(
      /nonexistent\/key.pem/,
    )
    await backends.close()
  })
})

describe('RsaDecryptPool on the thread pool (the controller)', () => {
  const issue = (pool: RsaDecryptPool, dks: Buffer[]) =>
    dks.map(async (dk) => {
      await Promise.resolve()
      return pool.decrypt(k, wrap(dk), label)
    })

  it('runs a burst on libuv thread pool lanes, without a worker thread, with the same results; a bad ciphertext is null', async () => {
    const pool = new RsaDecryptPool(2, undefined, 'threadpool')
    const dks = Array.from({length: 24}, () => crypto.randomBytes(32))
    const bad = Array.from({length: 10}, () => pool.decrypt(k, wrap(crypto.randomBytes(32), Buffer.from('other')), label))
    expect(await Promise.all(issue(pool, dks))).toEqual(dks)
    expect((await Promise.all(bad)).every((b) => b === null)).toBe(true)
    expect(pool.threadsStarted).toBe(0)
    // Two lanes per core, within the thread pool's 4 threads; never more at once.
    expect(pool.peakLanes).toBe(4)
    await pool.close()
  })

  it('keeps no more unwraps on the thread pool than it has lanes: a file stat issued mid-burst waits behind a few, not the burst', async () => {
    // RSA-4096, as the controller's keys are: each unwrap takes milliseconds.
    const big = {kid: 'team', key: crypto.createPrivateKey(readFileSync(TEAM_KEY))}
    const bigPub = crypto.createPublicKey(big.key)
    const pool = new RsaDecryptPool(2, undefined, 'threadpool')
    const dks = Array.from({length: 120}, () => crypto.randomBytes(32))
    const cts = dks.map((dk) =>
      crypto.publicEncrypt({key: bigPub, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256', oaepLabel: label}, dk),
    )
    let done = 0
    const all = cts.map(async (ct) => {
      await Promise.resolve()
      const out = await pool.decrypt(big, ct, label)
      done++
      return out
    })
    await until(() => pool.peakLanes === 4, 'the lanes to fill')
    // A stat is one job on the same thread pool: issued now, it is answered long before the burst ends
    // (with all 120 handed to the thread pool at once, it came after about 118 of them).
    await new Promise((resolve) => stat(TEAM_KEY, resolve))
    const atStat = done
    expect(await Promise.all(all)).toEqual(dks)
    expect(atStat).toBeLessThan(24)
    await pool.close()
  })

  it('sends the small batches that follow a burst to the lanes too, until idleMs passed; then they run inline again', async () => {
    const pool = new RsaDecryptPool(2, 100, 'threadpool')
    await Promise.all(
      issue(
        pool,
        Array.from({length: 16}, () => crypto.randomBytes(32)),
      ),
    )
    pool.peakLanes = 0
    const two = [crypto.randomBytes(32), crypto.randomBytes(32)]
    expect(await Promise.all(issue(pool, two))).toEqual(two)
    expect(pool.peakLanes).toBeGreaterThan(0)
    await sleep(150)
    pool.peakLanes = 0
    expect(await Promise.all(issue(pool, two))).toEqual(two)
    expect(pool.peakLanes).toBe(0)
    await pool.close()
  })

  it('answers unwraps still waiting when it closes', async () => {
    const pool = new RsaDecryptPool(2, undefined, 'threadpool')
    const dks = Array.from({length: 30}, () => crypto.randomBytes(32))
    const out = Promise.all(issue(pool, dks))
    await until(() => pool.peakLanes > 0, 'the lanes to start')
    await pool.close()
    expect(await out).toEqual(dks)
  })

  it('sizes its lanes by UV_THREADPOOL_SIZE as libuv reads it', () => {
    expect(threadPoolSize({})).toBe(4)
    expect(threadPoolSize({UV_THREADPOOL_SIZE: '16'})).toBe(16)
    expect(threadPoolSize({UV_THREADPOOL_SIZE: '0'})).toBe(4)
    expect(threadPoolSize({UV_THREADPOOL_SIZE: 'x'})).toBe(4)
    expect(threadPoolSize({UV_THREADPOOL_SIZE: '5000'})).toBe(1024)
  })
})
