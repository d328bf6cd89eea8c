/**
 * A stream's Secrets, read by the scanner (scan.ts) when it accepts the text — the common
 * block-style manifest, several times faster — and by the full parser (parse.ts) otherwise, which
 * also gives every error message. test/scan.test.ts proves that what the scanner accepts it reads
 * exactly as the full parser does.
 *
 * A scanned Secret is handed on as the SecretDoc the full parser would make, for the edits
 * (edits.ts) that rewrite it: each value's node is a Scalar carrying its style and source range; the
 * `kseal` pair's nodes carry the envelope's lines; and the mapping (`map`) is block style with two
 * entries standing for where its entries are — the first key's position (the column entries are
 * written at) and the end of the last entry (where a new envelope goes in). Those are the only parts
 * of the mapping the edits read: a scanned SecretDoc is for rewriting values and the envelope, not
 * for walking the Secret's entries.
 */
import {Pair, Scalar, YAMLMap} from 'yaml'
import {parseManifests, type SecretDoc} from './parse.js'
import {type ScannedSecret, scanManifests} from './scan.js'

export interface ReadSecrets {
  text: string
  secrets: SecretDoc[]
  /** `\r\n` when the file uses CRLF line ends (the scanner reads only `\n`). */
  eol: string
}

/** A node at [start, end) as yaml ranges one: [start, value end, node end]. */
function scalarAt(start: number, end: number, type?: Scalar.Type, value: unknown = null): Scalar {
  const s = new Scalar(value)
  s.range = [start, end, end]
  if (type) s.type = type
  return s
}

function toSecretDoc(s: ScannedSecret): SecretDoc {
  const map = new YAMLMap()
  map.flow = false
  map.range = [s.map.firstKey, s.map.insertAt, s.map.insertAt]
  map.items.push(new Pair(scalarAt(s.map.firstKey, s.map.firstKey)), new Pair(scalarAt(s.map.insertAt, s.map.insertAt), null))
  const envelopePair = s.envelope
    ? new Pair(scalarAt(s.envelope.range[0], s.envelope.range[0], undefined, 'kseal'), scalarAt(s.envelope.range[1], s.envelope.range[1]))
    : null
  return {
    where: s.where,
    namespace: s.namespace,
    name: s.name,
    map,
    values: s.values.map((v) => ({
      field: v.field,
      key: v.key,
      value: v.value,
      encrypted: v.encrypted,
      node: v.source ? scalarAt(v.source.range[0], v.source.range[1], v.source.type, v.value) : null,
    })),
    envelopePair,
    envelopeRaw: s.envelope?.raw,
  }
}

/** The Secrets of a text, scanned; null when the scanner declines it (then parseManifests reads it). */
export function scanSecrets(text: string, file: string | undefined): ReadSecrets | null {
  const r = scanManifests(text, file)
  return r.ok ? {text, eol: r.manifests.eol, secrets: r.manifests.secrets.map(toSecretDoc)} : null
}

/** The Secrets of a text: scanned, or parsed by the full parser (which throws on what it refuses). */
export function readSecrets(text: string, file?: string): ReadSecrets {
  return scanSecrets(text, file) ?? parseManifests(text, file)
}
