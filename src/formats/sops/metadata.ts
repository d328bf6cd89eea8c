/**
 * The `sops` block: parsed and checked as untrusted input (every list capped, every field's type
 * and size checked, times as Go parses them), and written back in the layout sops 3.13 writes
 * (keys in alphabetical order, empty key lists left out).
 *
 * Nothing here is authenticated by sops itself except through the MAC: the key entries are not
 * covered by it, the encryption rules and `lastmodified` are (a changed rule changes what is
 * hashed; `lastmodified` is the MAC's additional data).
 */
import {isMap, isScalar, isSeq, type Node} from 'yaml'
import {KsealError} from '../../core/errors.js'
import {parseEnc} from './cipher.js'
import {resolvePlain, rfc3339RoundTrip} from './go.js'
import type {RuleSpec} from './rules.js'

/** The sops release whose file layout kseal writes. */
export const SOPS_WRITE_VERSION = '3.13.1'
export const METADATA_KEY = 'sops'

const MAX_GROUPS = 16
const MAX_ENTRIES = 64
const MAX_ENC_BYTES = 16 * 1024
const MAX_FIELD_BYTES = 4 * 1024
const MAX_CONTEXT_ENTRIES = 32

export interface AgeEntry {
  kind: 'age'
  recipient: string
  enc: string
}
export interface PgpEntry {
  kind: 'pgp'
  fp: string
  createdAt: string
  enc: string
}
export interface KmsEntry {
  kind: 'kms'
  arn: string
  role?: string
  context?: Record<string, string>
  createdAt: string
  enc: string
  awsProfile?: string
}
export interface GcpKmsEntry {
  kind: 'gcp_kms'
  resourceId: string
  createdAt: string
  enc: string
}
/** Azure Key Vault and HashiCorp Vault entries: read so they can be named; kseal cannot open them. */
export interface OtherEntry {
  kind: 'azure_kv' | 'hc_vault'
  id: string
  enc: string
}
export type KeyEntry = AgeEntry | PgpEntry | KmsEntry | GcpKmsEntry | OtherEntry

export interface SopsMetadata {
  /** `lastmodified` as written. */
  lastModified: string
  /** What sops authenticates the MAC with: `lastmodified` after Go's RFC 3339 round trip. */
  macAad: string
  /** The encrypted MAC, `ENC[...,type:str]`. */
  mac: string
  version: string
  keyGroups: KeyEntry[][]
  shamirThreshold?: number
  rules: RuleSpec
  macOnlyEncrypted: boolean
}

/** A metadata node as plain data: maps, lists, and scalars as text (null for a plain null). */
type Plain = string | null | Plain[] | {[k: string]: Plain}

export function plainData(node: unknown): Plain {
  if (isMap(node)) {
    const out: {[k: string]: Plain} = {}
    for (const p of node.items) {
      if (!isScalar(p.key) || typeof p.key.value !== 'string') throw malformed('a key is not a string')
      out[p.key.value] = plainData(p.value)
    }
    return out
  }
  if (isSeq(node)) return node.items.map(plainData)
  if (node === null || node === undefined) return null
  if (isScalar(node)) {
    const text = String(node.value)
    return node.type === 'PLAIN' && resolvePlain(text).type === 'null' ? null : text
  }
  throw malformed('unexpected YAML node')
}

function malformed(what: string): KsealError {
  return new KsealError('ERR_INTEGRITY', `malformed SOPS metadata: ${what}`)
}

function str(o: {[k: string]: Plain}, key: string, where: string, required = true): string | undefined {
  const v = o[key]
  if (v === undefined || v === null) {
    if (required) throw malformed(`${where} has no ${key}`)
    return undefined
  }
  if (typeof v !== 'string') throw malformed(`${where}: ${key} is not a string`)
  if (v.length > (key === 'enc' ? MAX_ENC_BYTES : MAX_FIELD_BYTES)) throw malformed(`${where}: ${key} is too long`)
  return v
}

function time(o: {[k: string]: Plain}, key: string, where: string): string {
  const v = str(o, key, where)!
  if (rfc3339RoundTrip(v) === null) throw malformed(`${where}: ${key} is not an RFC 3339 time`)
  return v
}

function list(o: {[k: string]: Plain}, key: string, where: string): {[k: string]: Plain}[] {
  const v = o[key]
  if (v === undefined || v === null || v === '') return []
  if (!Array.isArray(v)) throw malformed(`${where}: ${key} is not a list`)
  if (v.length > MAX_ENTRIES) throw malformed(`${where}: more than ${MAX_ENTRIES} ${key} entries`)
  return v.map((e, i) => {
    if (typeof e !== 'object' || e === null || Array.isArray(e)) throw malformed(`${where}: ${key} entry ${i + 1} is not a mapping`)
    return e
  })
}

function group(o: {[k: string]: Plain}, where: string): KeyEntry[] {
  const out: KeyEntry[] = []
  // The order sops builds a group in (internalGroupFrom): KMS, GCP KMS, Azure, Vault, PGP, age.
  for (const [i, e] of list(o, 'kms', where).entries()) {
    const w = `${where}: kms entry ${i + 1}`
    const entry: KmsEntry = {kind: 'kms', arn: str(e, 'arn', w)!, createdAt: time(e, 'created_at', w), enc: str(e, 'enc', w)!}
    const role = str(e, 'role', w, false)
    if (role) entry.role = role
    const profile = str(e, 'aws_profile', w, false)
    if (profile) entry.awsProfile = profile
    const ctx = e.context
    if (ctx !== undefined && ctx !== null) {
      if (typeof ctx !== 'object' || Array.isArray(ctx)) throw malformed(`${w}: context is not a mapping`)
      const pairs = Object.entries(ctx)
      if (pairs.length > MAX_CONTEXT_ENTRIES) throw malformed(`${w}: context has more than ${MAX_CONTEXT_ENTRIES} entries`)
      entry.context = {}
      for (const [k, v] of pairs) {
        if (typeof v !== 'string' || v.length > MAX_FIELD_BYTES || k.length > MAX_FIELD_BYTES)
          throw malformed(`${w}: context value ${JSON.stringify(k)} is not a string`)
        entry.context[k] = v
      }
    }
    out.push(entry)
  }
  for (const [i, e] of list(o, 'gcp_kms', where).entries()) {
    const w = `${where}: gcp_kms entry ${i + 1}`
    out.push({kind: 'gcp_kms', resourceId: str(e, 'resource_id', w)!, createdAt: time(e, 'created_at', w), enc: str(e, 'enc', w)!})
  }
  for (const [i, e] of list(o, 'azure_kv', where).entries()) {
    const w = `${where}: azure_kv entry ${i + 1}`
    out.push({
      kind: 'azure_kv',
      id: `${str(e, 'vault_url', w)}/keys/${str(e, 'name', w)}/${str(e, 'version', w, false) ?? ''}`,
      enc: str(e, 'enc', w)!,
    })
  }
  for (const [i, e] of list(o, 'hc_vault', where).entries()) {
    const w = `${where}: hc_vault entry ${i + 1}`
    out.push({
      kind: 'hc_vault',
      id: `${str(e, 'vault_address', w)}/v1/${str(e, 'engine_path', w)}/keys/${str(e, 'key_name', w)}`,
      enc: str(e, 'enc', w)!,
    })
  }
  for (const [i, e] of list(o, 'pgp', where).entries()) {
    const w = `${where}: pgp entry ${i + 1}`
    out.push({kind: 'pgp', fp: str(e, 'fp', w)!, createdAt: time(e, 'created_at', w), enc: str(e, 'enc', w)!})
  }
  for (const [i, e] of list(o, 'age', where).entries()) {
    const w = `${where}: age entry ${i + 1}`
    out.push({kind: 'age', recipient: str(e, 'recipient', w)!, enc: str(e, 'enc', w)!})
  }
  return out
}

/** Reads and checks a `sops` mapping node. */
export function parseMetadata(node: Node | null): SopsMetadata {
  const o = plainData(node)
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw malformed('the sops entry is not a mapping')
  const lastModified = str(o, 'lastmodified', 'sops')!
  const macAad = rfc3339RoundTrip(lastModified)
  if (macAad === null) throw malformed('lastmodified is not an RFC 3339 time')
  const mac = str(o, 'mac', 'sops')!
  const parsedMac = parseEnc(mac)
  if (!parsedMac || parsedMac.type !== 'str') throw malformed('mac is not an encrypted value')
  const version = str(o, 'version', 'sops')!
  const major = /^(\d+)\./.exec(version)?.[1]
  if (major !== '2' && major !== '3') {
    throw new KsealError(
      'ERR_VERSION',
      `unsupported SOPS format version ${JSON.stringify(version.slice(0, 40))} (kseal reads files written by sops 2 and 3)`,
    )
  }
  for (const field of ['encrypted_comment_regex', 'unencrypted_comment_regex']) {
    if (typeof o[field] === 'string' && o[field] !== '')
      throw new KsealError(
        'ERR_INPUT',
        `SOPS files with ${field} are not supported by kseal (they decide by comments, which kseal does not read the way sops does)`,
      )
  }
  const rules: RuleSpec = {
    unencryptedSuffix: str(o, 'unencrypted_suffix', 'sops', false),
    encryptedSuffix: str(o, 'encrypted_suffix', 'sops', false),
    unencryptedRegex: str(o, 'unencrypted_regex', 'sops', false),
    encryptedRegex: str(o, 'encrypted_regex', 'sops', false),
  }
  const macOnly = o.mac_only_encrypted
  if (macOnly !== undefined && macOnly !== null && macOnly !== 'true' && macOnly !== 'false')
    throw malformed('mac_only_encrypted is not true or false')

  let keyGroups: KeyEntry[][]
  const top = group(o, 'sops')
  if (top.length) {
    keyGroups = [top]
  } else {
    const groups = list(o, 'key_groups', 'sops')
    if (groups.length > MAX_GROUPS) throw malformed(`more than ${MAX_GROUPS} key groups`)
    keyGroups = groups.map((g, i) => group(g, `sops: key group ${i + 1}`))
  }
  if (keyGroups.every((g) => g.length === 0)) throw malformed('no keys: the data key is not wrapped for anyone')
  let shamirThreshold: number | undefined
  const t = o.shamir_threshold
  if (t !== undefined && t !== null) {
    if (typeof t !== 'string' || !/^\d{1,2}$/.test(t)) throw malformed('shamir_threshold is not a small number')
    shamirThreshold = Number(t)
  }
  return {lastModified, macAad, mac, version, keyGroups, shamirThreshold, rules, macOnlyEncrypted: macOnly === 'true'}
}

/** A key entry's name for messages and listings: `age:age1…`, `pgp:FPR`, `awskms:ARN`, `gcpkms:…`. */
export function entryName(e: KeyEntry): string {
  switch (e.kind) {
    case 'age':
      return `age:${e.recipient}`
    case 'pgp':
      return `pgp:${e.fp}`
    case 'kms':
      return `awskms:${e.arn}${e.role ? ` (role ${e.role})` : ''}`
    case 'gcp_kms':
      return `gcpkms:${e.resourceId}`
    default:
      return `${e.kind}:${e.id}`
  }
}

/** The metadata as sops 3.13 writes it: one key group as top-level lists, keys sorted, empty lists left out. */
export function metadataObject(m: Omit<SopsMetadata, 'macAad'>): Record<string, unknown> {
  if (m.keyGroups.length !== 1) throw new KsealError('ERR_USAGE', 'kseal writes SOPS files with one key group')
  const entries = m.keyGroups[0]
  const byKind = (kind: KeyEntry['kind']) => entries.filter((e) => e.kind === kind)
  const out: Record<string, unknown> = {}
  const age = byKind('age') as AgeEntry[]
  if (age.length) out.age = age.map((e) => ({enc: e.enc, recipient: e.recipient}))
  if (m.rules.encryptedRegex) out.encrypted_regex = m.rules.encryptedRegex
  if (m.rules.encryptedSuffix) out.encrypted_suffix = m.rules.encryptedSuffix
  const gcp = byKind('gcp_kms') as GcpKmsEntry[]
  if (gcp.length) out.gcp_kms = gcp.map((e) => ({created_at: e.createdAt, enc: e.enc, resource_id: e.resourceId}))
  const kms = byKind('kms') as KmsEntry[]
  if (kms.length) {
    out.kms = kms.map((e) => ({
      arn: e.arn,
      aws_profile: e.awsProfile ?? '',
      ...(e.context ? {context: Object.fromEntries(Object.entries(e.context).sort(([a], [b]) => (a < b ? -1 : 1)))} : {}),
      created_at: e.createdAt,
      enc: e.enc,
      ...(e.role ? {role: e.role} : {}),
    }))
  }
  out.lastmodified = m.lastModified
  out.mac = m.mac
  if (m.macOnlyEncrypted) out.mac_only_encrypted = true
  const pgp = byKind('pgp') as PgpEntry[]
  if (pgp.length) out.pgp = pgp.map((e) => ({created_at: e.createdAt, enc: e.enc, fp: e.fp}))
  if (m.rules.unencryptedRegex) out.unencrypted_regex = m.rules.unencryptedRegex
  if (m.rules.unencryptedSuffix) out.unencrypted_suffix = m.rules.unencryptedSuffix
  out.version = m.version
  return out
}
