/**
 * Bitnami sealed-secrets SealedSecrets (src/formats/bitnami.ts): templated values (`spec.template.data`),
 * the template metadata, the scopes, and what is refused. The templated fixtures in
 * test/fixtures/bitnami were sealed with the interop public key the way
 * ../shared/interop/sealed-secrets/gen-sealed.mjs seals (test/fixtures/bitnami/gen-templated.mjs, with
 * node:crypto's public-key side); their expected Secrets are written by hand from sealed-secrets' Unseal.
 */
import crypto from 'node:crypto'
import {readFileSync} from 'node:fs'
import path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import {parse} from 'yaml'
import {MAX_BITNAMI_DATA, openBitnami, parseBitnami, unsealBitnami} from '../src/formats/bitnami.js'
import {FIXTURES, INTEROP} from './support/cli.js'

type Obj = Record<string, any> // eslint-disable-line @typescript-eslint/no-explicit-any
const SS = path.join(INTEROP, 'sealed-secrets')
const HERE = path.join(FIXTURES, 'bitnami')
const key = crypto.createPrivateKey(readFileSync(path.join(SS, 'tls.key')))
const load = (file: string): Obj => parse(readFileSync(file, 'utf8'))
const templated = (scope: string) => load(path.join(HERE, `templated-${scope}.yaml`))
const text = (secret: Obj, k: string) => Buffer.from(secret.data[k], 'base64').toString('utf8')
const withTemplates = (data: Obj, base = load(path.join(SS, 'sealedsecret-strict.yaml'))): Obj => {
  base.spec.template.data = data
  return base
}
const failure = (f: () => unknown): Obj => {
  try {
    f()
  } catch (e) {
    return e as Obj
  }
  throw new Error('did not throw')
}

describe('spec.template.data', () => {
  it.each(['strict', 'namespace-wide', 'cluster-wide'])('renders the %s fixture to the Secret sealed-secrets writes', (scope) => {
    const out = unsealBitnami(templated(scope), [key])
    expect(out).toEqual(load(path.join(HERE, `expected-templated-${scope}.yaml`)))
    expect(text(out, 'dsn')).toBe(`postgres://app:hunter2'"=@db.internal:5432/appdb`)
    expect(out.data).not.toHaveProperty('host')
  })

  it('renders text around actions, index and field forms, whitespace trimming and sprig functions over the real fixture', () => {
    const out = unsealBitnami(
      withTemplates({
        greeting: 'size {{ len .large }}, {{ index . "empty" | default "none" }} {{- "!" }}',
        sum: '{{ .unicode | sha256sum }}',
        same: '{{ printf "%s" .unicode | b64enc }}',
      }),
      [key],
    ) as Obj
    expect(text(out, 'greeting')).toBe('size 65536, none!')
    const values = JSON.parse(readFileSync(path.join(SS, 'expected-values.json'), 'utf8'))
    expect(text(out, 'sum')).toBe(crypto.createHash('sha256').update(values.unicode).digest('hex'))
    expect(text(out, 'same')).toBe(Buffer.from(values.unicode).toString('base64'))
  })

  it('refuses a function or construct it lacks, naming it and its position, before any private-key work', () => {
    let rsa = 0
    const refuse = (tpl: string) => {
      const e = failure(() => openBitnami(parseBitnami(withTemplates({out: tpl})), [key], {onRsa: () => rsa++}))
      expect(e.code).toBe('ERR_INPUT')
      expect(e.where.secret).toBe('interop-ns/interop-strict')
      return e.message as string
    }
    expect(refuse('a\n  {{ env "HOME" }}')).toMatch(
      /^spec\.template\.data\.out: line 2, column 6: function "env" is not supported .*environment/,
    )
    expect(refuse('{{ now }}')).toMatch(/function "now" is not supported .*clock/)
    expect(refuse('{{ randAlphaNum 8 }}')).toMatch(/"randAlphaNum"/)
    expect(refuse('{{ template "x" }}')).toMatch(/line 1, column 4: named templates/)
    expect(refuse('{{ .password')).toMatch(/spec\.template\.data\.out: line 1/)
    expect(rsa).toBe(0)
  })

  it('refuses a key no value has (sealed-secrets would write "<no value>"), and output past the Secret size limit', () => {
    const missing = failure(() => unsealBitnami(withTemplates({out: 'x{{ .nope }}'}), [key]))
    expect(missing).toMatchObject({code: 'ERR_INPUT', message: expect.stringContaining('map has no entry for key "nope"')})
    const indexed = failure(() => unsealBitnami(withTemplates({out: 'x{{ index . "nope" }}'}), [key]))
    expect(indexed).toMatchObject({
      code: 'ERR_INPUT',
      message: expect.stringContaining('names a key that neither'),
      where: {key: 'template.data.out'},
    })
    // A missing key under default is what users write for optional values: that renders.
    expect(text(unsealBitnami(withTemplates({out: '{{ index . "nope" | default "none" }}'}), [key]) as Obj, 'out')).toBe('none')
    const big = failure(() => unsealBitnami(withTemplates({out: '{{ .large }}'.repeat(17)}), [key]))
    expect(big).toMatchObject({code: 'ERR_INPUT', message: expect.stringContaining(`${MAX_BITNAMI_DATA} bytes`)})
    const loop = failure(() =>
      unsealBitnami(withTemplates({out: '{{ range splitList "A" .large }}{{ range splitList "A" $.large }}{{ end }}{{ end }}'}), [key]),
    )
    expect(loop).toMatchObject({code: 'ERR_INPUT', message: expect.stringContaining('steps')})
  })

  it('takes labels, annotations, type and immutable from the template, name and namespace from the SealedSecret', () => {
    const s = load(path.join(SS, 'sealedsecret-strict.yaml'))
    s.spec.template = {
      metadata: {name: 'other', namespace: 'elsewhere', labels: {a: 'b'}, annotations: {c: 'd'}},
      type: 'kubernetes.io/basic-auth',
      immutable: true,
    }
    const out = unsealBitnami(s, [key]) as Obj
    expect(out.metadata).toEqual({name: 'interop-strict', namespace: 'interop-ns', labels: {a: 'b'}, annotations: {c: 'd'}})
    expect(out.type).toBe('kubernetes.io/basic-auth')
    expect(out.immutable).toBe(true)
  })
})

describe('what is refused', () => {
  it('names the pre-0.7 format (spec.data) and how to convert it', () => {
    const s = load(path.join(SS, 'sealedsecret-strict.yaml'))
    s.spec.data = 'AgB...'
    expect(failure(() => parseBitnami(s)).message).toMatch(/pre-0\.7 sealed-secrets SealedSecret \(spec\.data.*kubeseal >= 0\.7/)
  })
  it('refuses malformed templates and keys', () => {
    expect(failure(() => parseBitnami(withTemplates({a: 7}))).message).toMatch(/template\.data must be a mapping of strings/)
    expect(failure(() => parseBitnami(withTemplates({'a b': 'x'}))).message).toMatch(/not a valid Secret key/)
    const s = load(path.join(SS, 'sealedsecret-strict.yaml'))
    s.spec.template.immutable = 'yes'
    expect(failure(() => parseBitnami(s)).message).toMatch(/immutable must be a boolean/)
  })
  it('stops at the private-key budget it is given', () => {
    const s = parseBitnami(load(path.join(SS, 'sealedsecret-strict.yaml')))
    const other = crypto.generateKeyPairSync('rsa', {modulusLength: 2048}).privateKey
    // 3 values × 2 keys, the right one last: 4 operations (the one that worked goes first afterwards).
    let n = 0
    expect(openBitnami(s, [other, key], {onRsa: () => n++}).data).toBeDefined()
    expect(n).toBe(4)
    expect(failure(() => openBitnami(s, [other, key], {maxRsaOps: 3})).message).toMatch(/more private-key operations/)
  })
})
