/**
 * Work amplification: the work an input can make kseal do is bounded by caps (recipient entries per
 * envelope, parts and entries per SealedSecret), by trying each held key id at most once, and by a
 * per-request budget on the controller's /v1/rotate. The tests count unwrap attempts and private-key
 * operations, never wall-clock time.
 */
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parseDocument} from 'yaml'
import type {Identity, KeyBinding, RecipientEntry} from '../keys/types.js'
import {keyBinding} from '../src/envelope/binding.js'
import {MAX_RECIPIENTS} from '../src/envelope/envelope.js'
import {type Attempt, Keyring, unwrapWith} from '../src/keyring/keyring.js'
import {clusterApi} from '../src/kube/api.js'
import {silentLogger} from './support/log.js'
import {startController} from '../src/controller/controller.js'
import {DEFAULTS} from '../src/controller/options.js'
import {sample} from './support/metrics.js'
import {RESEAL_WORK_BUDGET} from '../src/controller/sealed/reseal.js'
import {mergeIntoSealed, sealSecret} from '../src/sealed/seal.js'
import {MAX_PART_RECIPIENTS, MAX_PARTS} from '../src/sealed/types.js'
import {unsealSealedSecret} from '../src/sealed/unseal.js'
import {decryptText} from '../src/ops/decrypt.js'
import {encryptText} from '../src/ops/encrypt.js'
import {TEAM_KEY} from './support/cli.js'
import {until} from './support/until.js'
import {startK8sApiServer, type K8sApiServer} from './support/k8s-api-server.js'
import {keyringFor, otherRecipient, teamRecipient, testBackends} from './support/keys.js'

const backends = testBackends()
let srv: K8sApiServer
beforeAll(async () => {
  srv = await startK8sApiServer({namespaces: ['default', 'amp']})
})
afterAll(async () => {
  await backends.close()
  await srv?.close()
})

const PLAIN = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: prod\nstringData:\n  a: b\n'

/** A real identity that counts its unwrap attempts. */
function counting(id: Identity): Identity & {calls: number} {
  const c = {
    backend: id.backend,
    kid: id.kid,
    source: id.source,
    calls: 0,
    async unwrap(e: RecipientEntry, b: KeyBinding) {
      c.calls++
      return id.unwrap(e, b)
    },
  }
  return c
}

describe('a Secret with many bogus entries', () => {
  it(`1,000 entries are refused before any key operation (at most ${MAX_RECIPIENTS} per envelope)`, async () => {
    const enc = await encryptText(PLAIN, 'x', {recipients: [await teamRecipient(backends)], scope: 'strict'})
    const doc = parseDocument(enc)
    const entries = (doc.getIn(['kseal', 'recipients']) as {toJSON(): RecipientEntry[]}).toJSON()
    doc.setIn(
      ['kseal', 'recipients'],
      doc.createNode([...Array.from({length: 1000}, () => ({...entries[0], wrapped: 'AAAA'})), entries[0]]),
    )
    const tampered = doc.toString()
    expect(tampered.length).toBeGreaterThan(64_000)
    const [team] = await keyringFor(backends, [TEAM_KEY]).all()
    const probe = counting(team)
    const keyring = new Keyring(backends, {keys: [], env: {XDG_CONFIG_HOME: '/nonexistent-kseal-config'}})
    ;(keyring as unknown as {stages: {label: string; load: () => Promise<Identity[]>}[]}).stages.unshift({
      label: 'probe',
      load: async () => [probe],
    })
    await expect(decryptText(tampered, 'x', keyring)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(/1001 recipients \(at most 64\)/),
    })
    expect(probe.calls).toBe(0)
  })

  it('each held key id is tried once, however often the file repeats it', async () => {
    const [team] = await keyringFor(backends, [TEAM_KEY]).all()
    const probe = counting(team)
    const bogus = Array.from({length: MAX_RECIPIENTS}, () => ({backend: 'rsa', kid: team.kid, wrapped: 'AAAA'}))
    const attempt: Attempt = {failure: null}
    expect(await unwrapWith(bogus, [probe], keyBinding({format: 2, scope: 'strict', namespace: 'prod', name: 'db'}), attempt)).toBeNull()
    expect(probe.calls).toBe(1)
    expect(attempt.failure).toBeTruthy()
  })
})

describe('SealedSecrets', () => {
  it(`a part is opened with at most one private-key operation, and at most ${MAX_PARTS} parts and ${MAX_PART_RECIPIENTS} entries per part are read`, async () => {
    const other = await otherRecipient(backends)
    const keyring = keyringFor(backends, [(await import('./support/cli.js')).OTHER_KEY])
    let ops = 0
    const open = (e: RecipientEntry[], b: KeyBinding) => {
      ops++
      return keyring.unwrap(e, b)
    }
    const sealed = await sealSecret(
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db', namespace: 'prod'}, stringData: {a: 'b'}},
      [other],
      'strict',
    )
    const entry = sealed.spec.envelope.parts[0].recipients[0]
    sealed.spec.envelope.parts[0].recipients = [
      ...Array.from({length: MAX_PART_RECIPIENTS - 1}, () => ({...entry, wrapped: 'AAAA'})),
      entry,
    ]
    await expect(unsealSealedSecret(sealed, open)).rejects.toMatchObject({exitCode: 3})
    expect(ops).toBe(1)
    sealed.spec.envelope.parts[0].recipients.push(entry)
    ops = 0
    await expect(unsealSealedSecret(sealed, open)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(/part 1: 17 recipients \(at most 16\)/),
    })
    expect(ops).toBe(0)
    const many = {
      ...sealed,
      spec: {
        ...sealed.spec,
        envelope: {...sealed.spec.envelope, parts: Array.from({length: MAX_PARTS + 1}, () => sealed.spec.envelope.parts[0])},
      },
    }
    await expect(unsealSealedSecret(many, open)).rejects.toMatchObject({
      message: expect.stringMatching(/65 parts \(at most 64; re-seal it/),
    })
    expect(ops).toBe(0)
  })

  it('/v1/rotate: the 240 KB request with thousands of entries, and one past the per-request budget, are refused with no private-key operation', async () => {
    const api = await clusterApi(srv.kubeConfig(), {baseMs: 5, maxMs: 20})
    const c = await startController(
      {
        ...DEFAULTS,
        namespaces: ['amp'],
        keyNamespace: 'amp',
        keyRenewPeriodMs: 0,
        keyBits: 2048,
        listen: '127.0.0.1:0',
        leaderElect: false,
        identity: 'amp',
        workers: 1,
        resyncPeriodMs: 0,
      },
      {api, log: silentLogger},
    )
    try {
      await until(() => c.keys.size === 1, 'the first key')
      const {RsaRecipient} = await import('../keys/rsa.js')
      const crypto = await import('node:crypto')
      const recipient = new RsaRecipient(new crypto.X509Certificate(c.keys.newest()!.certPem).publicKey, 'controller')
      let sealed = await sealSecret(
        {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db', namespace: 'amp'}, stringData: {a: 'b'}},
        [recipient],
        'strict',
      )
      const post = async (body: unknown) => {
        const r = await fetch(`http://${c.address}/v1/rotate`, {
          method: 'POST',
          body: JSON.stringify(body),
          headers: {'content-type': 'application/json'},
        })
        return {status: r.status, body: (await r.json()) as {code: string; message: string}}
      }
      const decryptions = async () => sample(await (await fetch(`http://${c.address}/metrics`)).text(), 'kseal_decryptions_total') ?? 0
      const entry = sealed.spec.envelope.parts[0].recipients[0]
      const huge = {
        ...sealed,
        spec: {
          ...sealed.spec,
          envelope: {
            ...sealed.spec.envelope,
            parts: [
              {...sealed.spec.envelope.parts[0], recipients: [...Array.from({length: 4147}, () => ({...entry, wrapped: 'AAAA'})), entry]},
            ],
          },
        },
      }
      expect(JSON.stringify(huge).length).toBeGreaterThan(240_000)
      expect(JSON.stringify(huge).length).toBeLessThan(1 << 20)
      const before = await decryptions()
      const r1 = await post(huge)
      expect(r1.status).toBe(422)
      expect(r1.body.message).toMatch(/4148 recipients \(at most 16\)/)
      for (let i = 0; i < RESEAL_WORK_BUDGET; i++) {
        sealed = await mergeIntoSealed(sealed, {apiVersion: 'v1', kind: 'Secret', metadata: {}, stringData: {[`k${i}`]: 'v'}}, [recipient])
      }
      expect(sealed.spec.envelope.parts).toHaveLength(RESEAL_WORK_BUDGET + 1)
      const r2 = await post(sealed)
      expect(r2.status).toBe(422)
      expect(r2.body.message).toMatch(/is sealed in 17 parts; \/v1\/rotate opens at most 16 per request: re-seal it/)
      expect(await decryptions()).toBe(before)
      // Within the budget it works, one operation per part.
      const ok = await post({
        ...sealed,
        spec: {
          ...sealed.spec,
          envelope: {...sealed.spec.envelope, parts: sealed.spec.envelope.parts.slice(0, 1)},
          encryptedData: {a: sealed.spec.encryptedData.a},
        },
      })
      expect(ok.status).toBe(200)
      expect(await decryptions()).toBe(before + 1)
      // A YAML body with a merge key is refused too (the controller reads YAML there).
      const {stringify} = await import('yaml')
      const yamlBody = stringify(sealed).replace(/^spec:/m, '<<: {kind: SealedSecret}\nspec:')
      const m = await fetch(`http://${c.address}/v1/rotate`, {
        method: 'POST',
        body: yamlBody,
        headers: {'content-type': 'application/yaml'},
      })
      expect(m.status).toBe(400)
      expect(((await m.json()) as {message: string}).message).toMatch(/^Secret amp\/db: uses a YAML merge key/)
    } finally {
      await c.stop()
    }
  })
})
