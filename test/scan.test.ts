/**
 * The fast scanner (src/manifest/scan.ts) against the full parser (parseManifests): for every input, either
 * the scanner declines, or the full parser reads it without error and what kseal uses of it is
 * exactly what the scanner read — where each document starts, each Secret's identity, every value
 * with its style and source range, where an envelope goes in and which lines an envelope takes up,
 * and the envelope's content. What kseal uses is taken from the full parser's nodes through the
 * same edit functions that rewrite files (edits.ts), so a range the edits would read differently
 * cannot pass.
 *
 * The SecretDocs the scanner's reading is handed on as (read.ts) must make the same edits as the
 * full parser's: every edit function kseal rewrites a Secret with (a value to a token, a token to a
 * value, the envelope inserted, replaced, removed) is applied to both and compared.
 *
 * Inputs: generated manifest streams in the usual shapes and in many near misses (random mutations
 * of them), the scalars the kubectl oracle test sends to kubectl, every fixture manifest, the
 * interop fixtures, and the benchmark corpus.
 */
import {mkdtempSync, readdirSync, readFileSync, rmSync, statSync} from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {describe, expect, it} from '@jest/globals'
import fc from 'fast-check'
import {Document, Pair, Scalar, YAMLMap} from 'yaml'
import {
  doubleQuoted,
  type Edit,
  insertEnvelopeEdit,
  removeEnvelopeEdit,
  replaceEnvelopeEdit,
  tokenEdit,
  valueEdit,
} from '../src/manifest/edits.js'
import {KUBE_YAML} from '../src/manifest/kubeyaml.js'
import {parseManifests, type SecretDoc} from '../src/manifest/parse.js'
import {readSecrets, scanSecrets} from '../src/manifest/read.js'
import {type ScannedManifests, scanManifests} from '../src/manifest/scan.js'
// @ts-expect-error: a JavaScript module without types
import {writeCorpus} from '../bench/corpus.mjs'
import {YAML_AWKWARD} from './support/awkward.js'
import {INTEROP, ROOT} from './support/cli.js'

/** More runs for a soak: KSEAL_SCAN_RUNS=50000 npm test -- test/scan.test.ts */
const RUNS = Number(process.env.KSEAL_SCAN_RUNS) || 1500
/** Another sample: KSEAL_SCAN_SEED=7 */
const SEED = Number(process.env.KSEAL_SCAN_SEED) || 13

/** What kseal uses of the full parser's reading, in the scanner's terms. */
function fullReading(text: string, file?: string): ScannedManifests {
  const p = parseManifests(text, file)
  return {
    text: p.text,
    documents: p.docs.map((d) => d.range[0]),
    secrets: p.secrets.map((s) => ({
      where: s.where,
      namespace: s.namespace,
      name: s.name,
      values: s.values.map((v) => ({
        field: v.field,
        key: v.key,
        value: v.value,
        encrypted: v.encrypted,
        source: v.value === null ? null : {type: v.node!.type as string, range: [v.node!.range![0], v.node!.range![1]]},
      })),
      map: s.map.flow
        ? {flow: true}
        : {firstKey: (s.map.items[0].key as Scalar).range![0], insertAt: insertEnvelopeEdit(text, s.map, {}, 'x', p.eol).start},
      envelope: s.envelopePair ? {range: rangeOf(removeEnvelopeEdit(text, s.map, s.envelopePair)), raw: s.envelopeRaw} : null,
    })),
    eol: p.eol,
  } as ScannedManifests
}

const rangeOf = (e: {start: number; end: number}) => [e.start, e.end]

interface Tally {
  accepted: number
  declined: number
}

/** The property for one input; counts what the scanner accepted. */
function agrees(text: string, tally: Tally, file?: string): void {
  const r = scanManifests(text, file)
  if (!r.ok) {
    tally.declined++
    return
  }
  tally.accepted++
  let full: ScannedManifests
  try {
    full = fullReading(text, file)
  } catch (e) {
    throw new Error(`the scanner accepted what the full parser refuses (${(e as Error).message}):\n${JSON.stringify(text)}`)
  }
  try {
    expect(r.manifests).toEqual(full)
    expect(editsOf(scanSecrets(text, file)!.secrets, text)).toEqual(editsOf(parseManifests(text, file).secrets, text))
  } catch (e) {
    throw new Error(`the scanner and the full parser differ on:\n${JSON.stringify(text)}\n${(e as Error).message}`)
  }
}

const ENV = {version: 2, scope: 'strict', recipients: [{backend: 'rsa', kid: 'ab', wrapped: 'AAAA'}], mac: 'x'}
const VALUES = ['', 'one line', 'two\nlines\n', 'kseal:v2:AAAA', ' lead', "it's", 'x: y', 'tail\n\n']

/** Every edit kseal could make to these Secrets, computed from their SecretDocs (the scanner's, or the full parser's). */
function editsOf(secrets: SecretDoc[], text: string): Edit[] {
  return secrets.flatMap((s) => [
    ...(s.map.flow ? [] : [insertEnvelopeEdit(text, s.map, ENV, 'kseal', '\n')]),
    ...(s.envelopePair
      ? [removeEnvelopeEdit(text, s.map, s.envelopePair), replaceEnvelopeEdit(text, s.map, s.envelopePair, ENV, 'kseal', '\n')]
      : []),
    ...s.values.flatMap((v) =>
      // A null value is never rewritten (the full parser keeps its node, the scanner has none).
      v.node && v.value !== null
        ? [tokenEdit(text, v.node, 'kseal:v2:AAAA', '\n'), ...VALUES.map((x) => valueEdit(text, v.node!, x, '\n', false))]
        : [],
    ),
  ])
}

// ---------------------------------------------------------------- generated manifests

/** Scalars as people and tools write them, and the pieces that trip readers up. */
const CURATED = oracleCurated()
const word = fc.stringMatching(/^[a-z][a-z0-9.-]{0,14}$/)
const rarely = <T>(usual: fc.Arbitrary<T>, odd: fc.Arbitrary<T>) => fc.oneof({arbitrary: usual, weight: 30}, {arbitrary: odd, weight: 1})
const keyWord = rarely(
  fc.oneof(
    word,
    fc.stringMatching(/^[-._a-zA-Z0-9]{1,12}$/),
    fc.constantFrom('.dockerconfigjson', 'tls.crt', 'app.kubernetes.io/name', '1', 'kseal', 'data'),
  ),
  fc.constantFrom('yes', 'on', 'y', '1.0', '0x1F', '007', '1e3', 'null', '~', '<<', 'true', '-x', 'a b', 'a:b', '#x', '__proto__'),
)
const awkward = fc.constantFrom(...YAML_AWKWARD, '  ', ': ', ' #', 'é', '---', '...', '\n---\n', 'kseal:v2:')
/** Values as they usually are. */
const usualText = fc.oneof(
  {arbitrary: fc.base64String({maxLength: 80}), weight: 4},
  {arbitrary: word, weight: 3},
  {arbitrary: fc.base64String({minLength: 4, maxLength: 40}).map((b) => `kseal:v2:${b.replace(/[+/=]/g, 'A')}`), weight: 3},
  {arbitrary: fc.base64String({minLength: 400, maxLength: 2000}), weight: 1},
  {arbitrary: fc.array(word, {minLength: 1, maxLength: 4}).map((ls) => ls.join('\n') + '\n'), weight: 1},
  {arbitrary: fc.string({unit: 'grapheme', maxLength: 20}).filter((t) => !/[\p{C}\s#:'"\\]/u.test(t)), weight: 1},
)
/** Anything: what readers disagree on. */
const wildText = fc.oneof(
  fc.constantFrom(...CURATED),
  fc.constantFrom(
    'x:',
    'x: y',
    'x #y',
    'x#y',
    'x :y',
    '- x',
    '-x',
    '--x',
    '-',
    '-1',
    ':x',
    '? x',
    'x # y: z',
    'kseal:v2:x:',
    '|',
    '>-',
    'x\n',
    '\nx',
    ' x',
    'x ',
    '{}',
    '[]',
    '{x}',
    '[x]',
  ),
  fc.string({unit: 'grapheme', maxLength: 20}),
  fc.array(fc.oneof(awkward, fc.string({unit: 'grapheme-ascii', maxLength: 4})), {maxLength: 8}).map((a) => a.join('')),
)
const text = fc.oneof({arbitrary: usualText, weight: 12}, {arbitrary: wildText, weight: 1})

type Style = 'plain' | 'single' | 'double' | 'kseal-double' | 'json' | 'literal' | 'folded' | 'yaml' | 'null'
const style = fc.constantFrom<Style>(
  'plain',
  'plain',
  'single',
  'double',
  'kseal-double',
  'json',
  'literal',
  'literal',
  'folded',
  'yaml',
  'null',
)

/** A scalar written in a style at a given indentation: the text after `key:` (including its own line breaks for blocks). */
function render(s: string, st: Style, pad: string, chomp: string, extra: number, comment: string): string {
  switch (st) {
    case 'plain':
      return ` ${s}${comment}`
    case 'single':
      return ` '${s.replace(/'/g, "''")}'${comment}`
    case 'double':
      return ` "${s.replace(/["\\]/g, (c) => `\\${c}`).replace(/\n/g, '\\n')}"${comment}`
    case 'kseal-double':
      return ` ${doubleQuoted(s, false)}${comment}`
    case 'json':
      return ` ${JSON.stringify(s)}${comment}`
    case 'literal':
    case 'folded': {
      const body = s
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => (l === '' ? '' : `${pad}  ${' '.repeat(extra)}${l}`))
      return ` ${st === 'literal' ? '|' : '>'}${chomp}${comment}\n${body.join('\n')}`
    }
    case 'yaml': {
      // As the yaml package writes it, in whatever style it picks for the text.
      const doc = new Document(null, KUBE_YAML)
      const map = new YAMLMap()
      map.items.push(new Pair(new Scalar('k'), new Scalar(s)))
      doc.contents = map
      const out = doc.toString({lineWidth: 0}).replace(/^k:/, '').replace(/\n$/, '')
      return out
        .split('\n')
        .map((l, i) => (i === 0 || l === '' ? l : pad + l))
        .join('\n')
    }
    case 'null':
      return ['', ' null', ' ~', ' # none'][s.length % 4]
  }
}

const comment = rarely(fc.constantFrom('', '', '', '', '', ' # a comment', '   #c', '  ', ' #: x'), fc.constant('#not'))
const chomp = fc.constantFrom('', '', '-', '+')
interface ScalarSpec {
  s: string
  st: Style
  chomp: string
  extra: number
  comment: string
}
const scalar: fc.Arbitrary<ScalarSpec> = fc.record({s: text, st: style, chomp, extra: fc.constantFrom(0, 0, 0, 1, 2), comment})
const keyText = fc
  .tuple(keyWord, fc.constantFrom('plain', 'plain', 'plain', 'single', 'double'))
  .map(([k, q]) => (q === 'single' ? `'${k}'` : q === 'double' ? JSON.stringify(k) : k))

/** Comment and blank lines that may sit between entries. */
const filler = fc.array(
  fc.constantFrom('', '  ', '# a comment', ' # a comment', '  # indented comment', '    # deeper comment', '#', '  #'),
  {maxLength: 2},
)

/** Entries of a mapping at indentation pad, each `key: scalar`. */
const scalarMap = (n: number) => fc.array(fc.tuple(keyText, scalar, filler), {maxLength: n})
function mapLines(entries: [string, ScalarSpec, string[]][], pad: string, trailing: string[] = []): string[] {
  const out: string[] = []
  for (const [k, v, fill] of entries) {
    out.push(...fill.map((f) => (f === '' ? f : pad + f)))
    out.push(`${pad}${k}:${render(v.s, v.st, pad, v.chomp, v.extra, v.comment)}`)
  }
  return [...out, ...trailing.map((f) => (f === '' ? f : pad + f))]
}

const identity = fc.record({
  apiVersion: rarely(
    fc.constantFrom('v1', 'v1', 'v1', '"v1"', "'v1'", '/v1', 'apps/v1', 'bitnami.com/v1alpha1'),
    fc.constantFrom('v2', '', '1'),
  ),
  kind: rarely(
    fc.constantFrom('Secret', 'Secret', 'Secret', 'Secret', '"Secret"', 'ConfigMap', 'Deployment'),
    fc.constantFrom('SecretList', 'List', ''),
  ),
  name: fc.oneof(word, fc.constantFrom('', '"quoted-name"', "'single'", '123', 'yes', 'null')),
  namespace: fc.option(fc.oneof(word, fc.constantFrom('"ns"', '0x1F', '~')), {nil: undefined}),
})

const envelope = fc.record({
  version: fc.constantFrom('2', '1', '"2"', '2.0'),
  scope: fc.constantFrom('"strict"', 'strict', '"namespace"', '"cluster"'),
  recipients: fc.array(
    fc.record({
      backend: fc.constantFrom('"rsa"', 'rsa', '"awskms"'),
      kid: fc.stringMatching(/^[0-9a-f]{4,16}$/),
      wrapped: fc.base64String({maxLength: 60}),
    }),
    {minLength: 1, maxLength: 3},
  ),
  mac: fc.base64String({maxLength: 44}),
  compact: fc.boolean(),
  namespace: fc.constantFrom('"ns"', 'null', undefined),
})

/** Any nesting of block mappings, sequences and scalars (a Deployment's spec, say). */
type Tree = {scalar: ScalarSpec} | {map: [string, Tree][]} | {seq: Tree[]} | {empty: '{}' | '[]'}
const {tree} = fc.letrec<{tree: Tree; map: Tree; seq: Tree}>((tie) => ({
  tree: fc.oneof(
    {depthSize: 'small', withCrossShrink: true},
    scalar.map((v) => ({scalar: v})),
    tie('map'),
    tie('seq'),
    fc.constantFrom<Tree>({empty: '{}'}, {empty: '[]'}),
  ),
  map: fc.array(fc.tuple(keyText, tie('tree')), {minLength: 1, maxLength: 4}).map((entries) => ({map: entries})),
  seq: fc.array(tie('tree'), {minLength: 1, maxLength: 3}).map((items) => ({seq: items})),
}))

/** A tree as the value after `key:` (or the item after `-`) at indentation pad; `step` deeper for what nests. */
function treeLines(t: Tree, pad: string, step: string, compactSeq: boolean): {inline: string; lines: string[]} {
  if ('scalar' in t) {
    const [first, ...rest] = render(t.scalar.s, t.scalar.st, pad, t.scalar.chomp, t.scalar.extra, t.scalar.comment).split('\n')
    return {inline: first, lines: rest}
  }
  if ('empty' in t) return {inline: ` ${t.empty}`, lines: []}
  if ('map' in t) return {inline: '', lines: mapTree(t.map, pad + step, step, compactSeq)}
  const at = compactSeq ? pad : pad + step
  return {inline: '', lines: seqTree(t.seq, at, step, compactSeq)}
}

function mapTree(entries: [string, Tree][], pad: string, step: string, compactSeq: boolean): string[] {
  return entries.flatMap(([k, v]) => {
    const {inline, lines} = treeLines(v, pad, step, compactSeq)
    return [`${pad}${k}:${inline}`, ...lines]
  })
}

function seqTree(items: Tree[], pad: string, step: string, compactSeq: boolean): string[] {
  return items.flatMap((item) => {
    if ('map' in item) {
      // `- key: value`, the mapping's other keys under the first.
      const [first, ...rest] = mapTree(item.map, pad + '  ', step, compactSeq)
      return [`${pad}- ${first.slice(pad.length + 2)}`, ...rest]
    }
    const {inline, lines} = treeLines(item, pad + '  ', step, compactSeq)
    return [`${pad}-${inline}`, ...lines]
  })
}

const document = fc.record({
  identity,
  // (A Secret with a spec is declined: half the documents have none, so most Secrets are scanned.)
  spec: fc.option(fc.tuple(tree, fc.boolean()), {nil: undefined, freq: 1}),
  order: fc.constantFrom('usual', 'kustomize', 'reversed'),
  labels: fc.option(scalarMap(3), {nil: undefined}),
  annotations: fc.option(scalarMap(2), {nil: undefined}),
  owners: fc.option(fc.tuple(fc.boolean(), fc.array(word, {minLength: 1, maxLength: 2})), {nil: undefined}),
  type: fc.option(fc.constantFrom('Opaque', 'kubernetes.io/tls', '"Opaque"'), {nil: undefined}),
  data: fc.option(fc.oneof(scalarMap(6), fc.constant(null)), {nil: undefined}),
  stringData: fc.option(fc.oneof(scalarMap(6), fc.constant(null)), {nil: undefined}),
  /** Comment and blank lines after the last value of data and stringData. */
  tail: filler,
  envelope: fc.option(envelope, {nil: undefined}),
  nest: fc.constantFrom(2, 2, 2, 4, 1, 3),
  head: filler,
})

type DocumentSpec = typeof document extends fc.Arbitrary<infer T> ? T : never

function documentLines(d: DocumentSpec): string[] {
  const p = ' '.repeat(d.nest)
  const parts: Record<string, string[]> = {}
  parts.apiVersion = [`apiVersion: ${d.identity.apiVersion}`]
  parts.kind = [`kind: ${d.identity.kind}`]
  const meta = [`metadata:`]
  if (d.identity.name !== '') meta.push(`${p}name: ${d.identity.name}`)
  if (d.identity.namespace !== undefined) meta.push(`${p}namespace: ${d.identity.namespace}`)
  if (d.labels) meta.push(`${p}labels:`, ...mapLines(d.labels, p + p))
  if (d.annotations) meta.push(`${p}annotations: ${d.annotations.length ? '' : '{}'}`.trimEnd(), ...mapLines(d.annotations, p + p))
  if (d.owners) {
    const [compact, names] = d.owners
    const dash = compact ? p : p + '  '
    meta.push(`${p}ownerReferences:`)
    for (const n of names) meta.push(`${dash}- apiVersion: v1`, `${dash}  kind: Thing`, `${dash}  name: ${n}`)
    meta.push(`${p}finalizers:`, ...names.map((n) => `${dash}- ${n}`))
  }
  parts.metadata = meta
  if (d.type) parts.type = [`type: ${d.type}`]
  for (const f of ['data', 'stringData'] as const) {
    const m = d[f]
    if (m === undefined) continue
    parts[f] = m === null ? [`${f}:`] : [`${f}:`, ...mapLines(m, p, d.tail)]
  }
  if (d.envelope) {
    const e = d.envelope
    const env = ['kseal:', `${p}version: ${e.version}`, `${p}scope: ${e.scope}`]
    if (e.namespace !== undefined) env.push(`${p}namespace: ${e.namespace}`)
    env.push(`${p}recipients:`)
    const dash = e.compact ? p : p + '  '
    for (const r of e.recipients) env.push(`${dash}- backend: ${r.backend}`, `${dash}  kid: "${r.kid}"`, `${dash}  wrapped: "${r.wrapped}"`)
    env.push(`${p}mac: "${e.mac}"`)
    parts.kseal = env
  }
  if (d.spec) {
    const {inline, lines} = treeLines(d.spec[0], '', p, d.spec[1])
    parts.spec = [`spec:${inline}`, ...lines]
  }
  const order =
    d.order === 'kustomize'
      ? ['apiVersion', 'data', 'kind', 'kseal', 'metadata', 'spec', 'stringData', 'type']
      : d.order === 'reversed'
        ? ['kseal', 'stringData', 'data', 'spec', 'type', 'metadata', 'kind', 'apiVersion']
        : ['apiVersion', 'kind', 'metadata', 'spec', 'type', 'data', 'stringData', 'kseal']
  return [...d.head, ...order.flatMap((k) => parts[k] ?? [])]
}

const separator = fc.constantFrom('---', '---', '--- # next', '---  ', '...\n---', '---\n# between')
export const streamArb = fc
  .record({
    docs: fc.array(
      fc.oneof(
        {arbitrary: document.map(documentLines), weight: 8},
        {arbitrary: fc.constant([] as string[]), weight: 1},
        {arbitrary: fc.constant(['# only a comment']), weight: 1},
      ),
      {minLength: 1, maxLength: 4},
    ),
    separators: fc.array(separator, {minLength: 4, maxLength: 4}),
    leading: fc.constantFrom('', '', '---\n', '# header\n\n---\n', '# header\n'),
    trailing: fc.constantFrom('\n', '\n', '', '\n\n', '\n...\n', '\n# end\n'),
  })
  .map((s) => s.leading + s.docs.map((d, i) => (i === 0 ? '' : s.separators[i] + '\n') + d.join('\n')).join('\n') + s.trailing)

/** Whole streams in the shapes the scanner leaves to the full parser: Lists, JSON, a byte-order mark, CRLF. */
const listArb = fc
  .array(document.map(documentLines), {minLength: 1, maxLength: 3})
  .map(
    (docs) =>
      `apiVersion: v1\nkind: List\nitems:\n${docs.map((d) => d.map((l, i) => (i === 0 ? '- ' : '  ') + l).join('\n')).join('\n')}\n`,
  )
const jsonArb = fc
  .array(fc.tuple(word, fc.oneof(text, fc.constant(null))), {maxLength: 4})
  .map((kv) => JSON.stringify({apiVersion: 'v1', kind: 'Secret', metadata: {name: 'j'}, stringData: Object.fromEntries(kv)}, null, 2))
export const oddStreamArb = fc
  .tuple(fc.oneof(streamArb, listArb, jsonArb), fc.constantFrom('', '\ufeff'), fc.boolean())
  .map(([t, bom, crlf]) => bom + (crlf ? t.replace(/\n/g, '\r\n') : t))

/** Near misses: a usual stream with a few small edits where readers disagree, or where YAML stops being simple. */
const SNIPPETS = [
  '\t',
  '\r',
  '\r\n',
  '\ufeff',
  ' #',
  '# ',
  ': ',
  ':',
  '-',
  '- ',
  '&a ',
  '*a',
  '!!str ',
  '!!binary ',
  '<<: ',
  '<<: *a',
  '{',
  '}',
  '[',
  ']',
  ',',
  '"',
  "'",
  '|',
  '>',
  '|2',
  '>-',
  '...',
  '---',
  '\n---\n',
  '\n...\n',
  '\n',
  ' ',
  '  ',
  '?',
  '? ',
  '%YAML 1.1\n',
  '@',
  '`',
  'yes',
  '~',
  'null',
  '0x1F',
  '\\',
  '\\x41',
  '\\u00e9',
  '\\ud800',
  '\\/',
  'é',
  '😀',
  '\u00a0',
  '\u2028',
  '\u0085',
  '\x7f',
  'kseal:v2:AAAA',
  '\n  ',
  '\n    ',
  '\n# c\n',
  '\n  # c\n',
  'data:',
  'stringData:',
  'kind: Secret',
  'apiVersion: v1',
  'kseal:',
  '\n  k: v',
  '\n- x',
  ' | ',
  'items:\n- a',
  'kind: List',
  '__proto__: x',
]
const mutation = fc.oneof(
  fc.record({at: fc.nat(), insert: fc.constantFrom(...SNIPPETS)}),
  fc.record({at: fc.nat(), remove: fc.integer({min: 1, max: 3})}),
  fc.record({line: fc.nat(), shift: fc.constantFrom(-2, -1, 1, 2)}),
  fc.record({line: fc.nat(), duplicate: fc.constant(true)}),
)
const nearMiss = fc.tuple(streamArb, fc.array(mutation, {minLength: 1, maxLength: 3})).map(([s, ms]) => {
  let t = s
  for (const m of ms) {
    if ('insert' in m) {
      const at = m.at % (t.length + 1)
      t = t.slice(0, at) + m.insert + t.slice(at)
    } else if ('remove' in m) {
      const at = m.at % (t.length + 1)
      t = t.slice(0, at) + t.slice(at + m.remove)
    } else {
      const lines = t.split('\n')
      const i = m.line % lines.length
      if ('shift' in m) lines[i] = m.shift > 0 ? ' '.repeat(m.shift) + lines[i] : lines[i].replace(new RegExp(`^ {0,${-m.shift}}`), '')
      else lines.splice(i, 0, lines[i])
      t = lines.join('\n')
    }
  }
  return t
})

/** The plain texts the kubectl oracle test sends to kubectl (test/kubectl-oracle.test.ts CURATED), read from that test. */
function oracleCurated(): string[] {
  const src = readFileSync(path.join(ROOT, 'test/kubectl-oracle.test.ts'), 'utf8')
  const m = /const CURATED = (\[[\s\S]*?\n\])/.exec(src)
  if (!m) throw new Error('CURATED not found in test/kubectl-oracle.test.ts')
  return new Function(`return ${m[1]}`)() as string[]
}

describe('scanner vs the full parser', () => {
  it('agrees on generated manifest streams, and accepts most of them', () => {
    const tally = {accepted: 0, declined: 0}
    fc.assert(
      fc.property(streamArb, (t) => agrees(t, tally)),
      {numRuns: RUNS, seed: SEED},
    )
    // Not vacuous: the usual shapes are read by the scanner, not handed back.
    expect(tally.accepted).toBeGreaterThan(RUNS * 0.3)
  })

  it('agrees on Lists, JSON, a byte-order mark and CRLF (and leaves them to the full parser)', () => {
    const tally = {accepted: 0, declined: 0}
    fc.assert(
      fc.property(oddStreamArb, (t) => agrees(t, tally)),
      {numRuns: RUNS, seed: SEED + 2},
    )
    expect(tally.declined).toBeGreaterThan(RUNS * 0.5)
  })

  it('agrees on near misses (mutated streams)', () => {
    const tally = {accepted: 0, declined: 0}
    fc.assert(
      fc.property(nearMiss, (t) => agrees(t, tally)),
      {numRuns: RUNS * 2, seed: SEED + 1},
    )
    expect(tally.accepted).toBeGreaterThan(RUNS * 0.1)
  })

  it("agrees on the kubectl oracle's scalars, as values and as keys, in every style", () => {
    const tally = {accepted: 0, declined: 0}
    const styles: Style[] = ['plain', 'single', 'double', 'kseal-double', 'json', 'literal', 'folded', 'yaml']
    for (const t of CURATED) {
      for (const st of styles) {
        for (const ch of ['', '-', '+']) {
          agrees(`apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  k:${render(t, st, '  ', ch, 0, '')}\n`, tally)
        }
      }
      agrees(`apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  ${t}: v\n`, tally)
      agrees(`apiVersion: v1\nkind: Secret\nmetadata:\n  name: ${t}\n  namespace: ${t}\ndata:\n  'k': ${t}\n`, tally)
    }
    expect(tally.accepted).toBeGreaterThan(CURATED.length)
  })

  it('agrees on every manifest fixture and interop file', () => {
    const tally = {accepted: 0, declined: 0}
    const files = [...walk(path.join(ROOT, 'test/fixtures')), ...walk(INTEROP)].filter((f) => /\.(ya?ml|json)$/i.test(f))
    expect(files.length).toBeGreaterThan(20)
    for (const f of files) {
      const t = readFileSync(f, 'utf8')
      agrees(t, tally, f)
      agrees(t, tally)
    }
    expect(tally.accepted).toBeGreaterThan(10)
  })

  it('reads every file of the benchmark corpus (and agrees)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kseal-scan-'))
    try {
      writeCorpus(dir, {files: 20})
      const tally = {accepted: 0, declined: 0}
      for (const f of readdirSync(dir)) agrees(readFileSync(path.join(dir, f), 'utf8'), tally)
      expect(tally).toEqual({accepted: 20, declined: 0})
    } finally {
      rmSync(dir, {recursive: true, force: true})
    }
  })
})

describe('readSecrets', () => {
  it('reads with the scanner what it accepts, and with the full parser (and its errors) the rest', () => {
    const plain = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\nstringData:\n  k: v\n'
    expect(scanSecrets(plain, 'f.yaml')).not.toBeNull()
    expect(readSecrets(plain, 'f.yaml').secrets.map((s) => s.values.map((v) => v.value))).toEqual([['v']])
    const flow = 'apiVersion: v1\nkind: Secret\nmetadata: {name: a}\nstringData: {k: v}\n'
    expect(scanSecrets(flow, 'f.yaml')).toBeNull()
    expect(readSecrets(flow, 'f.yaml').secrets.map((s) => s.values.map((v) => v.value))).toEqual([['v']])
    expect(() => readSecrets('kind: Secret\n  : : [\n', 'f.yaml')).toThrow(/malformed YAML at line 2/)
  })
})

describe('scanner', () => {
  const secret = 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\n  namespace: b\n'

  it("reads a usual Secret: identity, values with style and range, the envelope's lines and content", () => {
    const text = `${secret}data:\n  k: aGk=  # hi\nstringData:\n  s: |\n    line\nkseal:\n  version: 2\n  recipients:\n  - backend: "rsa"\n    kid: "ab"\n  mac: "x"\n# end\n`
    const r = scanManifests(text, 'f.yaml')
    expect(r.ok).toBe(true)
    const [s] = (r as {manifests: ScannedManifests}).manifests.secrets
    expect(s.where).toEqual({file: 'f.yaml', document: 1, secret: 'b/a'})
    expect(s.values.map((v) => [v.field, v.key, v.value, v.source?.type, text.slice(...v.source!.range)])).toEqual([
      ['data', 'k', 'aGk=', 'PLAIN', 'aGk='],
      ['stringData', 's', 'line\n', 'BLOCK_LITERAL', '|\n    line\n'],
    ])
    expect(text.slice(...s.envelope!.range)).toBe('kseal:\n  version: 2\n  recipients:\n  - backend: "rsa"\n    kid: "ab"\n  mac: "x"\n')
    expect(s.envelope!.raw).toEqual({version: 2, recipients: [{backend: 'rsa', kid: 'ab'}], mac: 'x'})
    agrees(text, {accepted: 0, declined: 0})
  })

  // Each of these is read by the full parser (or refused by it with a message); the scanner hands them over.
  it.each([
    ['a flow mapping', `${secret}data: {k: v}\n`],
    ['an anchor', `${secret}data:\n  k: &a v\n`],
    ['an alias', `${secret}data:\n  k: *a\n`],
    ['a tag', `${secret}data:\n  k: !!str v\n`],
    ['a merge key', `${secret}<<: {data: {k: v}}\n`],
    ['a directive', `%YAML 1.1\n---\n${secret}`],
    ['a multi-line plain scalar', `${secret}data:\n  k: v\n    w\n`],
    ['a multi-line quoted scalar', `${secret}data:\n  k: "v\n    w"\n`],
    ['a tab', `${secret}data:\n  k:\tv\n`],
    ['CRLF', secret.replace(/\n/g, '\r\n')],
    ['a byte-order mark', `\ufeff${secret}`],
    ['JSON', '{"apiVersion": "v1", "kind": "Secret"}'],
    ['a List', 'apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n'],
    // A scanned Secret hands on no mapping to walk: another tool's block (SOPS's) must reach the full parser.
    [
      'a Secret with a key that is not a Secret field',
      'apiVersion: v1\nkind: Secret\nmetadata:\n  name: a\ndata:\n  k: ENC[AES256_GCM,data:x]\nsops:\n  version: 3.9.0\n',
    ],
    ['a duplicate key', `${secret}data:\n  k: v\n  k: w\n`],
    ['a key Kubernetes reads as a boolean', `${secret}stringData:\n  yes: v\n`],
    ['a value Kubernetes reads as a number', `${secret}stringData:\n  k: 0x1F\n`],
    ['content after a document end marker', `${secret}...\n${secret}`],
    ['a folded block with a more-indented line', `${secret}stringData:\n  k: >\n    a\n      b\n`],
    ['an explicit indentation indicator', `${secret}stringData:\n  k: |2\n    a\n`],
    ['NEL', `${secret}stringData:\n  k: a\u0085b\n`],
    ['a Secret with another version', 'apiVersion: v2\nkind: Secret\n'],
    ['data without a kind', 'data:\n  k: v\n'],
  ])('declines %s', (_, text) => {
    const r = scanManifests(text)
    expect(r.ok).toBe(false)
  })
})

function* walk(dir: string): Generator<string> {
  let names: string[]
  try {
    names = readdirSync(dir)
  } catch {
    return
  }
  for (const n of names) {
    const p = path.join(dir, n)
    if (statSync(p).isDirectory()) yield* walk(p)
    else yield p
  }
}
