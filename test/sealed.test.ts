/**
 * SealedSecret library (src/sealed/sealed.ts, src/sealed/*): sealing, opening, the merge chain and every way
 * of tampering with it, the spec hash, certificates from files and URLs, the frozen vector, and
 * Bitnami sealed-secrets interop with their real key and ciphertexts.
 */
import {chmodSync, copyFileSync, mkdtempSync, readFileSync, writeFileSync} from 'node:fs'
import http from 'node:http'
import type {AddressInfo} from 'node:net'
import os from 'node:os'
import path from 'node:path'
import {afterAll, beforeAll, describe, expect, it} from '@jest/globals'
import {parse, parseAllDocuments} from 'yaml'
import type {Backends} from '../keys/index.js'
import type {KeyBinding, Recipient, RecipientEntry} from '../keys/types.js'
import type {Keyring} from '../src/keyring/keyring.js'
import {loadCertificate, resolveCertificate} from '../src/client/cert.js'
import {tokenDigest} from '../src/sealed/chain.js'
import {sealedSpecHash} from '../src/sealed/hash.js'
import {mergeIntoSealed, sealSecret} from '../src/sealed/seal.js'
import {type SealedSecretObject, SEALED_GROUP, SEALED_KIND, SEALED_PLURAL, SEALED_VERSION} from '../src/sealed/types.js'
import {recipientKids, unsealSealedSecret} from '../src/sealed/unseal.js'
import {unsealBitnami} from '../src/formats/bitnami.js'
import {loadUnsealKeyring} from '../src/ops/unseal.js'
import {mapManifests, renderYaml} from '../src/manifest/objects.js'
import {mergeIntoText, sealStep} from '../src/ops/seal.js'
import {FIXTURES, OTHER_CERT, OTHER_KEY, INTEROP as SHARED_INTEROP} from './support/cli.js'
import {keyringFor, otherRecipient, teamRecipient, testBackends} from './support/keys.js'
import {failure} from './support/failure.js'

const INTEROP = path.join(SHARED_INTEROP, 'sealed-secrets')

let backends: Backends
let other: Recipient
let team: Recipient
let keyring: Keyring
let tmp: string
let opens = 0
const open = (e: RecipientEntry[], b: KeyBinding) => {
  opens++
  return keyring.unwrap(e, b)
}

beforeAll(async () => {
  backends = testBackends()
  other = await otherRecipient(backends)
  team = await teamRecipient(backends)
  keyring = keyringFor(backends, [OTHER_KEY])
  tmp = mkdtempSync(path.join(os.tmpdir(), 'kseal-sealed-'))
})

afterAll(async () => {
  await backends.close()
})

type Obj = Record<string, unknown>
const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64')
const clone = <T>(o: T): T => structuredClone(o)

function secret(over: Obj = {}, meta: Obj = {}): Obj {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: {name: 'db', namespace: 'prod', ...meta},
    type: 'Opaque',
    data: {alpha: b64('alpha-secret'), beta: b64('beta-secret'), gamma: b64('gamma-secret')},
    ...over,
  }
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (e) {
    return (e as {code?: string}).code ?? String(e)
  }
  return 'OK'
}

const unseal = (s: SealedSecretObject) => unsealSealedSecret(s, open)
const dataOf = async (s: SealedSecretObject) => (await unseal(s)).secret.data as Record<string, string>

describe('sealSecret / unsealSealedSecret', () => {
  it('exports the resource names the controller codes against', () => {
    expect([SEALED_GROUP, SEALED_VERSION, SEALED_KIND, SEALED_PLURAL]).toEqual(['kseal.dev', 'v1', 'SealedSecret', 'sealedsecrets'])
  })

  it('round-trips bytes, stringData and the template, and drops the last-applied plaintext copy', async () => {
    const binary = Buffer.from([0, 255, 1, 128, 127, 0xc3])
    const input = secret(
      {
        type: 'kubernetes.io/basic-auth',
        immutable: true,
        data: {binary: b64(binary), username: b64('from-data'), empty: ''},
        stringData: {username: 'admin', password: 'pässwörd 🔐'},
      },
      {
        labels: {app: 'db', flag: 'on'},
        annotations: {note: 'keep', 'kubectl.kubernetes.io/last-applied-configuration': '{"stringData":{"password":"pässwörd 🔐"}}'},
        resourceVersion: '42',
        uid: 'abc',
      },
    )
    const sealed = await sealSecret(input, [other], 'strict')
    const text = JSON.stringify(sealed)
    expect(text).not.toContain('pässwörd')
    expect(text).not.toContain(b64('pässwörd 🔐'))
    expect(text).not.toContain('last-applied')
    expect(sealed.metadata).toEqual({name: 'db', namespace: 'prod'})
    expect(Object.keys(sealed.spec.encryptedData)).toEqual(['binary', 'username', 'empty', 'password'])
    expect(sealed.spec.envelope.parts).toHaveLength(1)
    expect(sealed.spec.envelope.parts[0].recipients.map((r) => r.kid)).toEqual([other.kid])
    const {secret: out, kids} = await unseal(sealed)
    expect(kids).toEqual([other.kid])
    expect(out).toEqual({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {name: 'db', namespace: 'prod', labels: {app: 'db', flag: 'on'}, annotations: {note: 'keep'}},
      type: 'kubernetes.io/basic-auth',
      immutable: true,
      data: {binary: b64(binary), username: b64('admin'), empty: '', password: b64('pässwörd 🔐')},
    })
  })

  it('unwraps one data key per SealedSecret, however many values it has', async () => {
    const data: Obj = {}
    for (let i = 0; i < 40; i++) data[`k${i}`] = b64(`value-${i}`)
    const sealed = await sealSecret(secret({data}), [other], 'strict')
    opens = 0
    const out = await dataOf(sealed)
    expect(Object.keys(out)).toHaveLength(40)
    expect(opens).toBe(1)
  })

  it('binds values to namespace and name per scope', async () => {
    const moved = (s: SealedSecretObject, meta: Obj) => ({...clone(s), metadata: {...s.metadata, ...meta}})
    const strict = await sealSecret(secret(), [other], 'strict')
    expect(await code(unseal(moved(strict, {name: 'other'})))).toBe('ERR_DECRYPT')
    expect(await code(unseal(moved(strict, {namespace: 'dev'})))).toBe('ERR_DECRYPT')
    const ns = await sealSecret(secret(), [other], 'namespace')
    expect((await unseal(moved(ns, {name: 'renamed'}))).secret.metadata).toEqual({name: 'renamed', namespace: 'prod'})
    expect(await code(unseal(moved(ns, {namespace: 'dev'})))).toBe('ERR_DECRYPT')
    const cluster = await sealSecret(secret({}, {namespace: undefined}), [other], 'cluster')
    expect(cluster.metadata).toEqual({name: 'db'})
    expect((await dataOf(moved(cluster, {name: 'x', namespace: 'anywhere'}))).alpha).toBe(b64('alpha-secret'))
    // The scope is part of the binding: claiming a looser scope than the one sealed does not open it.
    const loosened = clone(strict)
    loosened.spec.envelope.scope = 'cluster'
    expect(await code(unseal(loosened))).toBe('ERR_DECRYPT')
  })

  it('refuses what it cannot seal', async () => {
    expect(await code(sealSecret(secret({}, {namespace: undefined}), [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({}, {namespace: undefined}), [other], 'namespace'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({}, {name: undefined}), [other], 'cluster'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({data: {a: 'not base64!'}}), [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({data: {'bad/key': b64('x')}}), [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({data: {a: 5}}), [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({data: {a: 'kseal:v1:AAAA'}, kseal: {version: 1}}), [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret({stringData: {a: 'kseal:v1:AAAA'}}), [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret({...secret(), apiVersion: 'v2'}, [other], 'strict'))).toBe('ERR_INPUT')
    expect(await code(sealSecret(secret(), [], 'strict'))).toBe('ERR_USAGE')
  })

  it('goes straight to the key id and says which key is missing', async () => {
    const forTeam = await sealSecret(secret(), [team], 'strict')
    let err: Error & {code?: string} = new Error()
    try {
      await unseal(forTeam)
    } catch (e) {
      err = e as Error & {code?: string}
    }
    expect(err.code).toBe('ERR_NO_KEY')
    expect(err.message).toContain(team.kid)
  })

  it('opens with any one of several recipients and reports the key id that did', async () => {
    const both = await sealSecret(secret(), [team, other], 'strict')
    expect(recipientKids(both)).toEqual([team.kid, other.kid])
    opens = 0
    const r = await unseal(both)
    expect(r.kids).toEqual([other.kid])
    expect((r.secret.data as Obj).beta).toBe(b64('beta-secret'))
  })
})

describe('tampering with a sealed SealedSecret', () => {
  let base: SealedSecretObject
  let again: SealedSecretObject
  beforeAll(async () => {
    base = await sealSecret(secret(), [other], 'strict')
    again = await sealSecret(secret(), [other], 'strict')
  })
  const tamper = async (f: (s: SealedSecretObject) => void) => {
    const s = clone(base)
    f(s)
    return code(unseal(s))
  }
  // A character in the middle: the last ones of padded base64 may carry only padding bits.
  const flip = (t: string) => {
    const i = Math.floor(t.length / 2)
    return t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1)
  }

  it('opens when untouched', async () => {
    expect(await code(unseal(clone(base)))).toBe('OK')
  })
  it('detects an altered value', async () => {
    expect(await tamper((s) => (s.spec.encryptedData.alpha = flip(s.spec.encryptedData.alpha)))).toBe('ERR_INTEGRITY')
  })
  it('detects a removed value', async () => {
    expect(await tamper((s) => delete s.spec.encryptedData.beta)).toBe('ERR_INTEGRITY')
  })
  it('detects an added value', async () => {
    expect(await tamper((s) => (s.spec.encryptedData.delta = s.spec.encryptedData.alpha))).toBe('ERR_INTEGRITY')
  })
  it('detects values swapped between keys', async () => {
    expect(
      await tamper((s) => {
        const d = s.spec.encryptedData
        ;[d.alpha, d.beta] = [d.beta, d.alpha]
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects a value replayed from another seal of the same Secret', async () => {
    expect(await tamper((s) => (s.spec.encryptedData.alpha = again.spec.encryptedData.alpha))).toBe('ERR_INTEGRITY')
  })
  it('detects a renamed key', async () => {
    expect(
      await tamper((s) => {
        s.spec.encryptedData.renamed = s.spec.encryptedData.alpha
        delete s.spec.encryptedData.alpha
        s.spec.envelope.parts[0].keys = ['beta', 'gamma', 'renamed']
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects an altered MAC or wrapped key, and a removed envelope', async () => {
    expect(
      await tamper((s) => (s.spec.envelope.parts[0].mac = base.spec.envelope.parts[0].mac.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')))),
    ).toBe('ERR_INTEGRITY')
    expect(
      await tamper((s) => (s.spec.envelope.parts[0].recipients[0].wrapped = flip(s.spec.envelope.parts[0].recipients[0].wrapped))),
    ).toBe('ERR_DECRYPT')
    expect(await tamper((s) => delete (s.spec as Partial<typeof s.spec>).envelope)).toBe('ERR_INTEGRITY')
    expect(await tamper((s) => ((s.spec.envelope as unknown as Obj).parts = []))).toBe('ERR_INTEGRITY')
  })
  it('refuses versions it does not know', async () => {
    expect(await tamper((s) => ((s.spec.envelope as {version: number}).version = 3))).toBe('ERR_VERSION')
    expect(await tamper((s) => (s.apiVersion = 'kseal.dev/v2'))).toBe('ERR_VERSION')
    expect(await tamper((s) => (s.spec.encryptedData.alpha = s.spec.encryptedData.alpha.replace('kseal:v2:', 'kseal:v9:')))).toBe(
      'ERR_VERSION',
    )
  })
  it('names the value that does not belong', async () => {
    const s = clone(base)
    s.spec.encryptedData.gamma = flip(s.spec.encryptedData.gamma)
    await expect(unseal(s)).rejects.toMatchObject({code: 'ERR_INTEGRITY', where: {secret: 'prod/db', key: 'encryptedData.gamma'}})
  })
  it("checks the shape against the CRD's schema, naming the field: the spec is ERR_INPUT, the envelope ERR_INTEGRITY", async () => {
    const bad = async (f: (s: Obj) => void) => {
      const s = clone(base) as unknown as Obj
      f(s)
      return failure(unseal(s as unknown as SealedSecretObject))
    }
    expect(await bad((s) => ((s.spec as Obj).template = {type: 7}))).toMatchObject({
      code: 'ERR_INPUT',
      message: 'spec.template.type must be a string',
    })
    expect(await bad((s) => ((s.spec as Obj).template = {metadata: {labels: {a: 1}}}))).toMatchObject({
      code: 'ERR_INPUT',
      message: 'spec.template.metadata.labels must be a mapping of strings',
    })
    expect(await bad((s) => ((s.spec as Obj).encryptedData = ['x']))).toMatchObject({
      code: 'ERR_INPUT',
      message: 'spec.encryptedData must be a mapping of strings',
    })
    const env = (s: Obj) => (s.spec as {envelope: {scope: unknown; parts: Obj[]}}).envelope
    expect(await bad((s) => (env(s).scope = 'galaxy'))).toMatchObject({
      code: 'ERR_INTEGRITY',
      message: 'malformed kseal envelope: scope must be one of strict, namespace, cluster',
    })
    expect(await bad((s) => delete env(s).parts[0].mac)).toMatchObject({
      code: 'ERR_INTEGRITY',
      message: 'malformed kseal envelope: parts[0].mac is required',
    })
    expect(await bad((s) => (env(s).parts[0].keys = 'alpha'))).toMatchObject({
      code: 'ERR_INTEGRITY',
      message: 'malformed kseal envelope: parts[0].keys must be a list',
    })
  })
})

describe('--merge-into: the envelope chain', () => {
  let base: SealedSecretObject
  let m1: SealedSecretObject
  let m2: SealedSecretObject
  beforeAll(async () => {
    base = await sealSecret(secret(), [other], 'strict')
    // Merges carry only the new values, and need only the certificate.
    m1 = await mergeIntoSealed(
      base,
      {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db'}, stringData: {beta: 'beta-2', delta: 'delta-1'}},
      [other],
    )
    m2 = await mergeIntoSealed(m1, {apiVersion: 'v1', kind: 'Secret', metadata: {}, data: {gamma: b64('gamma-2')}}, [other])
  })
  const tamper = async (f: (s: SealedSecretObject) => void, from = m2) => {
    const s = clone(from)
    f(s)
    return code(unseal(s))
  }
  const parts = (s: SealedSecretObject) => s.spec.envelope.parts

  it('adds and replaces values, keeps the others byte for byte, and opens with one RSA operation per part', async () => {
    expect(parts(m2).map((p) => p.keys)).toEqual([['alpha', 'beta', 'gamma'], ['beta', 'delta'], ['gamma']])
    expect(parts(m2)[1].supersedes).toEqual({beta: tokenDigest(base.spec.encryptedData.beta)})
    expect(m2.spec.encryptedData.alpha).toBe(base.spec.encryptedData.alpha)
    expect(m2.spec.encryptedData.delta).toBe(m1.spec.encryptedData.delta)
    expect(m2.spec.template).toEqual(base.spec.template)
    opens = 0
    expect(await dataOf(m2)).toEqual({alpha: b64('alpha-secret'), beta: b64('beta-2'), gamma: b64('gamma-2'), delta: b64('delta-1')})
    expect(opens).toBe(3)
  })
  it('detects the last part removed (its values kept)', async () => {
    expect(await tamper((s) => parts(s).pop())).toBe('ERR_INTEGRITY')
  })
  it('detects a middle part removed', async () => {
    expect(
      await tamper((s) => {
        parts(s).splice(1, 1)
        delete s.spec.encryptedData.delta
        s.spec.encryptedData.beta = base.spec.encryptedData.beta
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects parts reordered', async () => {
    expect(
      await tamper((s) => {
        const [a, b, c] = parts(s)
        s.spec.envelope.parts = [a, c, b]
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects a dropped value', async () => {
    expect(await tamper((s) => delete s.spec.encryptedData.delta)).toBe('ERR_INTEGRITY')
    expect(
      await tamper((s) => {
        delete s.spec.encryptedData.delta
        parts(s)[1].keys = ['beta']
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects a value moved from one part to another', async () => {
    expect(
      await tamper((s) => {
        parts(s)[1].keys = ['beta']
        parts(s)[2].keys = ['delta', 'gamma']
      }),
    ).toBe('ERR_INTEGRITY')
    expect(
      await tamper((s) => {
        parts(s)[1].keys = ['beta']
        parts(s)[0].keys = ['alpha', 'beta', 'delta', 'gamma']
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects a replaced value replayed', async () => {
    expect(await tamper((s) => (s.spec.encryptedData.beta = base.spec.encryptedData.beta))).toBe('ERR_INTEGRITY')
    // ... also when the replay comes with the matching digest and without the record of the replacement.
    expect(
      await tamper((s) => {
        s.spec.encryptedData.gamma = base.spec.encryptedData.gamma
        delete parts(s)[2].supersedes
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects an altered or removed supersedes record', async () => {
    expect(await tamper((s) => (parts(s)[1].supersedes = {beta: tokenDigest('forged')}))).toBe('ERR_INTEGRITY')
    expect(await tamper((s) => delete parts(s)[1].supersedes)).toBe('ERR_INTEGRITY')
    expect(await tamper((s) => (parts(s)[1].supersedes = {...parts(s)[1].supersedes, delta: tokenDigest('x')}))).toBe('ERR_INTEGRITY')
  })
  it('detects an appended part that reuses an earlier wrapped data key to bring a replaced value back', async () => {
    expect(
      await tamper((s) => {
        parts(s).push({
          recipients: parts(s)[0].recipients,
          keys: ['beta'],
          supersedes: {beta: tokenDigest(s.spec.encryptedData.beta)},
          mac: parts(s)[0].mac,
        })
        s.spec.encryptedData.beta = base.spec.encryptedData.beta
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('detects a part spliced in from another SealedSecret', async () => {
    const foreign = await mergeIntoSealed(await sealSecret(secret(), [other], 'strict'), secret({data: {gamma: b64('evil')}}), [other])
    expect(
      await tamper((s) => {
        s.spec.envelope.parts[2] = clone(parts(foreign)[1])
        s.spec.encryptedData.gamma = foreign.spec.encryptedData.gamma
        parts(s)[2].supersedes = {gamma: tokenDigest(m1.spec.encryptedData.gamma)}
      }),
    ).toBe('ERR_INTEGRITY')
  })
  it('cannot detect a rollback to an older complete file (documented)', async () => {
    // Dropping the last part and putting back the value it replaced is exactly the older file.
    const rolledBack = clone(m2)
    parts(rolledBack).pop()
    rolledBack.spec.encryptedData.gamma = m1.spec.encryptedData.gamma
    expect(rolledBack).toEqual(m1)
    expect(await dataOf(clone(m1))).toEqual({
      alpha: b64('alpha-secret'),
      beta: b64('beta-2'),
      gamma: b64('gamma-secret'),
      delta: b64('delta-1'),
    })
  })
  it('refuses to merge into a broken chain, another Secret, or nothing', async () => {
    const broken = clone(m2)
    delete broken.spec.encryptedData.delta
    expect(await code(mergeIntoSealed(broken, secret(), [other]))).toBe('ERR_INTEGRITY')
    expect(await code(mergeIntoSealed(m2, secret({}, {name: 'cache'}), [other]))).toBe('ERR_USAGE')
    expect(await code(mergeIntoSealed(m2, secret({}, {namespace: 'dev'}), [other]))).toBe('ERR_USAGE')
    expect(await code(mergeIntoSealed(m2, {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db'}}, [other]))).toBe('ERR_INPUT')
  })
  it('keeps the scope of the file, so merged values move with it', async () => {
    const ns = await sealSecret(secret(), [other], 'namespace')
    const merged = await mergeIntoSealed(ns, secret({data: {alpha: b64('a2')}}, {name: undefined}), [other])
    expect(merged.spec.envelope.scope).toBe('namespace')
    const renamed = {...clone(merged), metadata: {name: 'renamed', namespace: 'prod'}}
    expect((await dataOf(renamed)).alpha).toBe(b64('a2'))
  })
})

describe('sealedSpecHash and recipientKids', () => {
  it('is stable across key order and ignores status and server metadata, but not the spec, name or namespace', async () => {
    const s = await sealSecret(secret(), [other], 'strict')
    const h = sealedSpecHash(s)
    expect(h).toMatch(/^[0-9a-f]{64}$/)
    const reordered = JSON.parse(
      JSON.stringify(s, (_k, v) => (v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).reverse()) : v)),
    )
    expect(Object.keys(reordered.spec)).toEqual(['envelope', 'template', 'encryptedData'])
    expect(sealedSpecHash(reordered)).toBe(h)
    const withServer = {
      ...clone(s),
      metadata: {...s.metadata, uid: 'u', generation: 4, resourceVersion: '99', labels: {a: 'b'}},
      status: {observedGeneration: 4},
    }
    expect(sealedSpecHash(withServer)).toBe(h)
    const t = clone(s)
    t.spec.template = {...t.spec.template, type: 'kubernetes.io/tls'}
    expect(sealedSpecHash(t)).not.toBe(h)
    expect(sealedSpecHash({...clone(s), metadata: {name: 'db', namespace: 'dev'}})).not.toBe(h)
    expect(sealedSpecHash({...clone(s), metadata: {name: 'db2', namespace: 'prod'}})).not.toBe(h)
  })
  it('lists every key id once, in part order, and tolerates junk', async () => {
    const s = await mergeIntoSealed(await sealSecret(secret(), [team, other], 'strict'), secret(), [other])
    expect(recipientKids(s)).toEqual([team.kid, other.kid])
    expect(
      recipientKids({
        apiVersion: 'kseal.dev/v1',
        kind: 'SealedSecret',
        metadata: {name: 'x'},
        spec: {encryptedData: {}, envelope: {} as never},
      }),
    ).toEqual([])
  })
})

describe('the frozen vectors', () => {
  it.each(['v1', 'v2'])('merged-%s still opens to the same Secret', async (v) => {
    const sealed = parse(readFileSync(path.join(FIXTURES, 'sealed', `merged-${v}.sealed.yaml`), 'utf8'), {
      version: '1.1',
    }) as SealedSecretObject
    const expected = parse(readFileSync(path.join(FIXTURES, 'sealed', `merged-${v}.expected.yaml`), 'utf8'), {version: '1.1'})
    expect(sealed.spec.envelope.version).toBe(Number(v.slice(1)))
    expect(sealed.spec.envelope.parts).toHaveLength(2)
    const r = await unseal(sealed)
    expect(r.secret).toEqual(expected)
  })
  it('format 2 parts authenticate their recipients; editing version to 1 is refused', async () => {
    const text = readFileSync(path.join(FIXTURES, 'sealed', 'merged-v2.sealed.yaml'), 'utf8')
    const load = () => parse(text, {version: '1.1'}) as SealedSecretObject
    const added = load()
    added.spec.envelope.parts[0].recipients.push({
      backend: 'age',
      kid: 'age1fwj0v0ehul0kjmnv0drtk6azlhnqk6tcpak8cd4tx6nn5h3n4qpsgv8hc3',
      wrapped: 'eA==',
    })
    await expect(unseal(added)).rejects.toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(/part 1.*recipients were altered/),
    })
    const down = load()
    ;(down.spec.envelope as {version: number}).version = 1
    await expect(unseal(down)).rejects.toMatchObject({exitCode: 3})
  })
  it('merged-v1 (format 1) still opens to the same Secret', async () => {
    const sealed = parse(readFileSync(path.join(FIXTURES, 'sealed', 'merged-v1.sealed.yaml'), 'utf8'), {
      version: '1.1',
    }) as SealedSecretObject
    const expected = parse(readFileSync(path.join(FIXTURES, 'sealed', 'merged-v1.expected.yaml'), 'utf8'), {version: '1.1'})
    expect(sealed.spec.envelope.parts).toHaveLength(2)
    const r = await unseal(sealed)
    expect(r.secret).toEqual(expected)
    expect(Buffer.from((r.secret.data as Obj).password as string, 'base64').toString()).toBe('rotated-1')
  })
})

describe('loadCertificate', () => {
  let server: http.Server
  let base: string
  const pem = readFileSync(OTHER_CERT, 'utf8')
  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if (req.url?.startsWith('/v1/cert.pem')) {
        res.writeHead(200, {'content-type': 'application/x-pem-file'})
        res.end(pem)
      } else if (req.url === '/hang') {
        // never answers
      } else if (req.url === '/html') {
        res.end('<html>login</html>')
      } else {
        res.writeHead(404)
        res.end('not found')
      }
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  })
  const ctx = {cwd: FIXTURES, timeoutMs: 300}

  it('reads a certificate file (relative, or as rsa:PATH) and a public key', async () => {
    expect((await loadCertificate('keys/other.crt', ctx)).recipient.kid).toBe(other.kid)
    expect((await loadCertificate(`rsa:${OTHER_CERT}`, ctx)).recipient.kid).toBe(other.kid)
    const pub = path.join(tmp, 'other.pub.pem')
    const {createPublicKey} = await import('node:crypto')
    writeFileSync(pub, createPublicKey(readFileSync(OTHER_KEY, 'utf8')).export({type: 'spki', format: 'pem'}) as string)
    expect((await loadCertificate(pub, ctx)).recipient.kid).toBe(other.kid)
  })
  it('fetches a certificate over HTTP', async () => {
    const c = await loadCertificate(`${base}/v1/cert.pem`, ctx)
    expect(c.pem).toBe(pem)
    expect(c.recipient.kid).toBe(other.kid)
  })
  it('fails clearly: HTTP error, timeout, refused, not a certificate, a private key, a missing file', async () => {
    expect(await failure(loadCertificate(`${base}/nope`, ctx))).toMatchObject({
      code: 'ERR_IO',
      message: expect.stringContaining('HTTP 404'),
    })
    expect(await failure(loadCertificate(`${base}/hang`, ctx))).toMatchObject({
      code: 'ERR_IO',
      message: expect.stringContaining('no answer within 0.3 s'),
    })
    const closed = http.createServer()
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
    const port = (closed.address() as AddressInfo).port
    await new Promise((r) => closed.close(r))
    expect(await failure(loadCertificate(`http://127.0.0.1:${port}/v1/cert.pem`, ctx))).toMatchObject({
      code: 'ERR_IO',
      message: expect.stringContaining('connection refused'),
    })
    expect(await failure(loadCertificate(`${base}/html`, ctx))).toMatchObject({code: 'ERR_CONFIG'})
    expect(await failure(loadCertificate(OTHER_KEY, ctx))).toMatchObject({
      code: 'ERR_CONFIG',
      message: expect.stringContaining('private key'),
    })
    expect(await failure(loadCertificate('missing.crt', ctx))).toMatchObject({code: 'ERR_IO'})
    expect(await failure(resolveCertificate({}, ctx))).toMatchObject({code: 'ERR_USAGE'})
  })
  it('never follows a redirect', async () => {
    const to = http.createServer((_req, res) => {
      res.writeHead(302, {location: `${base}/v1/cert.pem?via=redirect`})
      res.end()
    })
    await new Promise<void>((r) => to.listen(0, '127.0.0.1', r))
    try {
      const e = await failure(loadCertificate(`http://127.0.0.1:${(to.address() as AddressInfo).port}/v1/cert.pem`, ctx))
      expect(e).toMatchObject({
        code: 'ERR_IO',
        message: expect.stringMatching(/HTTP 302: redirected to http:\/\/127\.0\.0\.1:\d+\/v1\/cert\.pem; kseal does not follow redirects/),
      })
    } finally {
      to.closeAllConnections()
      await new Promise((r) => to.close(r))
    }
  })
  it('over plain http to a host that is not loopback, requires a fingerprint pin, and any source checks a given pin', async () => {
    const seen: string[] = []
    const fetchStub = (async (u: URL) => {
      seen.push(String(u))
      return new Response(pem, {status: 200, headers: {'content-type': 'application/x-pem-file'}})
    }) as unknown as typeof fetch
    const url = 'http://kseal-controller.kseal-system:8080/v1/cert.pem'
    expect(await failure(loadCertificate(url, {...ctx, fetch: fetchStub}))).toMatchObject({
      code: 'ERR_USAGE',
      message: expect.stringMatching(
        /refusing to fetch the sealing certificate over plain HTTP from kseal-controller\.kseal-system:8080.*--cert-sha256/,
      ),
    })
    expect(seen).toEqual([])
    const {certFingerprint} = await import('../src/client/cert.js')
    const pin = certFingerprint(pem)
    expect((await loadCertificate(url, {...ctx, fetch: fetchStub, sha256: pin})).recipient.kid).toBe(other.kid)
    expect((await loadCertificate(url, {...ctx, fetch: fetchStub, sha256: pin.replace(/:/g, '').toLowerCase()})).recipient.kid).toBe(
      other.kid,
    )
    const wrong = pin.replace(/^../, pin.startsWith('00') ? '11' : '00')
    expect(await failure(loadCertificate(url, {...ctx, fetch: fetchStub, sha256: wrong}))).toMatchObject({
      code: 'ERR_INTEGRITY',
      message: expect.stringMatching(/fingerprint is .* not the one pinned/),
    })
    expect(await failure(loadCertificate(OTHER_CERT, {...ctx, sha256: wrong}))).toMatchObject({code: 'ERR_INTEGRITY'})
    expect(await failure(loadCertificate(OTHER_CERT, {...ctx, sha256: 'nope'}))).toMatchObject({code: 'ERR_USAGE'})
  })
  it('never shows credentials or query strings from the URL', async () => {
    const e = await failure(
      loadCertificate(`http://user:hunter2@127.0.0.1:${(server.address() as AddressInfo).port}/nope?token=s3cr3t`, ctx),
    )
    expect(e.message).not.toMatch(/hunter2|s3cr3t|user/)
    expect(e.message).toContain('/nope')
  })
})

describe('Bitnami sealed-secrets interop', () => {
  let keysFile: string
  beforeAll(() => {
    keysFile = path.join(tmp, 'sealed-secrets-key.yaml')
    copyFileSync(path.join(INTEROP, 'sealed-secrets-key.yaml'), keysFile)
    chmodSync(keysFile, 0o600)
  })
  const load = (name: string) => parse(readFileSync(path.join(INTEROP, name), 'utf8')) as Obj

  it.each(['strict', 'namespace-wide', 'cluster-wide'])(
    "opens the %s vector with the key from the controller's key Secret",
    async (scope) => {
      const keys = await loadUnsealKeyring([keysFile], backends)
      expect(keys.rsaKeys).toHaveLength(1)
      const out = unsealBitnami(load(`sealedsecret-${scope}.yaml`), keys.rsaKeys)
      expect(out).toEqual(load(`expected-secret-${scope}.yaml`))
      const values = JSON.parse(readFileSync(path.join(INTEROP, 'expected-values.json'), 'utf8'))
      const data = out.data as Record<string, string>
      expect(Buffer.from(data.unicode, 'base64').toString('utf8')).toBe(values.unicode)
      expect(Buffer.from(data.large, 'base64')).toHaveLength(65536)
    },
  )
  it('reads the PKCS#1 and PKCS#8 key files too, and detects tampering, moves and the wrong key', async () => {
    const pk1 = path.join(tmp, 'bitnami.key')
    copyFileSync(path.join(INTEROP, 'tls.key'), pk1)
    chmodSync(pk1, 0o600)
    const pk8 = path.join(tmp, 'bitnami.pkcs8.pem')
    copyFileSync(path.join(INTEROP, 'tls.key.pkcs8.pem'), pk8)
    chmodSync(pk8, 0o600)
    const keys = await loadUnsealKeyring([pk1, pk8, keysFile], backends)
    expect(keys.rsaKeys).toHaveLength(1)
    const strict = load('sealedsecret-strict.yaml')
    expect(unsealBitnami(strict, keys.rsaKeys)).toEqual(load('expected-secret-strict.yaml'))
    const t = clone(strict) as {spec: {encryptedData: Record<string, string>}; metadata: Obj}
    const raw = Buffer.from(t.spec.encryptedData.unicode, 'base64')
    raw[raw.length - 20] ^= 1
    t.spec.encryptedData.unicode = raw.toString('base64')
    expect(() => unsealBitnami(t, keys.rsaKeys)).toThrow(
      expect.objectContaining({code: 'ERR_INTEGRITY', where: expect.objectContaining({key: 'encryptedData.unicode'})}),
    )
    const moved = {...clone(strict), metadata: {...(strict.metadata as Obj), name: 'elsewhere'}}
    expect(() => unsealBitnami(moved, keys.rsaKeys)).toThrow(expect.objectContaining({code: 'ERR_NO_KEY'}))
    const wrong = await loadUnsealKeyring([OTHER_KEY], backends)
    expect(() => unsealBitnami(strict, wrong.rsaKeys)).toThrow(expect.objectContaining({code: 'ERR_NO_KEY'}))
  })
  it('refuses a key backup that others can read', async () => {
    const loose = path.join(tmp, 'loose.yaml')
    copyFileSync(keysFile, loose)
    chmodSync(loose, 0o644)
    expect(await code(loadUnsealKeyring([loose], backends))).toBe('ERR_KEY_PERMISSIONS')
    expect(await code(loadUnsealKeyring([path.join(FIXTURES, 'keys', 'other.crt')], backends))).toBe('ERR_CONFIG')
  })
})

describe('manifest streams', () => {
  it('replaces Secrets (also in Lists and on the --- line) and leaves every other byte as it was', async () => {
    const other1 = '# keep me\napiVersion: v1\nkind: ConfigMap   # odd spacing\nmetadata: {name: cm}\ndata:\n  on: "yes"\n'
    const text =
      `${other1}---\napiVersion: v1\nkind: Secret\nmetadata: {name: db, namespace: prod}\nstringData: {a: "1"}\n` +
      '--- {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "j", "namespace": "prod"}, "data": {"b": "Yg=="}}\n' +
      '---\napiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: inlist, namespace: prod}\n  data: {c: Yw==}\n'
    const m = await mapManifests(text, 'in.yaml', sealStep([other], 'strict'))
    const out = renderYaml(m)
    expect(out.startsWith(other1 + '---\napiVersion: kseal.dev/v1\n')).toBe(true)
    const docs = parseAllDocuments(out, {version: '1.1'}).map((d) => d.toJS())
    expect(docs.map((d) => d.kind)).toEqual(['ConfigMap', 'SealedSecret', 'SealedSecret', 'List'])
    expect(docs[3].items[0].kind).toBe('SealedSecret')
    const keys = await loadUnsealKeyring([OTHER_KEY], backends)
    const {unsealStep} = await import('../src/ops/unseal.js')
    const back = renderYaml(await mapManifests(out, 'out.yaml', unsealStep(keys)))
    const plain = parseAllDocuments(back, {version: '1.1'}).map((d) => d.toJS())
    expect(plain[1].data).toEqual({a: b64('1')})
    expect(plain[2].data).toEqual({b: 'Yg=='})
    expect(plain[3].items[0].data).toEqual({c: 'Yw=='})
    expect(back.startsWith(other1)).toBe(true)
  })

  it('merges into YAML keeping comments, and into JSON as JSON', async () => {
    const sealed = await sealSecret(secret(), [other], 'strict')
    const {toYaml} = await import('../src/manifest/objects.js')
    const yamlText = '# the db credentials\n' + toYaml(sealed).replace('  template:', '  # shown to reviewers\n  template:')
    const add = {apiVersion: 'v1', kind: 'Secret', metadata: {name: 'db'}, stringData: {beta: 'b2'}}
    const y = await mergeIntoText(yamlText, 'db.yaml', add, [other])
    expect(y).toContain('# the db credentials\n')
    expect(y).toContain('# shown to reviewers')
    const fromYaml = parse(y, {version: '1.1'}) as SealedSecretObject
    expect(fromYaml.spec.encryptedData.alpha).toBe(sealed.spec.encryptedData.alpha)
    expect((await dataOf(fromYaml)).beta).toBe(b64('b2'))
    const j = await mergeIntoText(JSON.stringify(sealed, null, 2), 'db.json', add, [other])
    const fromJson = JSON.parse(j) as SealedSecretObject
    expect(fromJson.spec.envelope.parts).toHaveLength(2)
    expect((await dataOf(fromJson)).beta).toBe(b64('b2'))
    expect(await code(mergeIntoText(yamlText, 'db.yaml', add, [other], 'cluster'))).toBe('ERR_USAGE')
    expect(await code(mergeIntoText('apiVersion: v1\nkind: ConfigMap\n', 'x.yaml', add, [other]))).toBe('ERR_INPUT')
  })
})
