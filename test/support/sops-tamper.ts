/**
 * The ways a SOPS file is tampered with in the tests, shared by the library's tests
 * (test/sops.test.ts) and the CLI's (test/sops-cli.test.ts): each makes a variant of a fixture that
 * sops itself refuses, and names the error code kseal must refuse it with (exit 3 for all).
 */
import {parse, stringify} from 'yaml'

export type Tampering = [name: string, make: (rel: string) => string, code: string]

/** Flips the character after the first match of `re`. */
export function flipAfter(s: string, re: RegExp): string {
  const m = re.exec(s)!
  const at = m.index + m[0].length
  return s.slice(0, at) + (s[at] === 'A' ? 'B' : 'A') + s.slice(at + 1)
}

/** The tamperings, for fixtures read by `read(rel)`. */
export function sopsTamperings(read: (rel: string) => string): Tampering[] {
  /** Edits a file through its parsed form (layout is not what is being tested), keeping YAML or JSON. */
  const edit = (rel: string, fn: (tree: Record<string, unknown>) => void) => {
    const tree = parse(read(rel)) as Record<string, unknown>
    fn(tree)
    return rel.endsWith('.json') ? JSON.stringify(tree, null, '\t') : stringify(tree)
  }
  const firstEncrypted = (tree: Record<string, unknown>) =>
    Object.keys(tree).find(
      (k) =>
        k !== 'sops' &&
        typeof tree[k] === 'string' &&
        (tree[k] as string).startsWith('ENC[AES256_GCM,data:') &&
        !(tree[k] as string).startsWith('ENC[AES256_GCM,data:,'),
    )!
  return [
    ['a value flipped', (rel) => flipAfter(read(rel), /^[^s#\n][^:\n]*"?: "?ENC\[AES256_GCM,data:/m), 'ERR_INTEGRITY'],
    ['a value removed', (rel) => edit(rel, (t) => delete t[firstEncrypted(t)]), 'ERR_INTEGRITY'],
    ['an unencrypted value added', (rel) => edit(rel, (t) => Object.assign(t, {added_unencrypted: 'x'})), 'ERR_INTEGRITY'],
    [
      'a value moved to another key',
      (rel) =>
        edit(rel, (t) => {
          const k = firstEncrypted(t)
          t[`${k}2`] = t[k]
          delete t[k]
        }),
      'ERR_INTEGRITY',
    ],
    ['the MAC altered', (rel) => flipAfter(read(rel), /"?mac"?: "?ENC\[AES256_GCM,data:/), 'ERR_INTEGRITY'],
    [
      'lastmodified altered',
      (rel) => read(rel).replace(/(lastmodified"?: ['"]?\d{4}-\d\d-\d\dT\d\d:\d\d:\d)(\d)/, (_m, a, d) => a + (d === '0' ? '1' : '0')),
      'ERR_INTEGRITY',
    ],
    [
      'every key entry altered',
      (rel) =>
        edit(rel, (t) => {
          const meta = t.sops as Record<string, {enc: string}[] | null>
          for (const list of [meta.age, meta.pgp]) for (const e of list ?? []) e.enc = flipAfter(e.enc, /-----\n+\S{40}/)
        }),
      'ERR_DECRYPT',
    ],
  ]
}
