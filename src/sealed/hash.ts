/** The hash the controller keeps on a Secret to know, without decrypting, that it matches its SealedSecret. */
import crypto from 'node:crypto'
import {isObj, type Obj} from '../core/guards.js'
import type {SealedSecretObject} from './types.js'

/** A value with every mapping's keys sorted (undefined dropped), for hashing as JSON. */
export function canonicalJson(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(canonicalJson)
  if (isObj(v)) {
    const out: Obj = {}
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) out[k] = canonicalJson(v[k])
    return out
  }
  return v
}

/**
 * A stable hash of what the produced Secret depends on: the SealedSecret's name, namespace and spec
 * (canonical JSON, keys sorted). The controller keeps it on the Secret so that a restart with
 * nothing changed decrypts nothing. Hex SHA-256.
 */
export function sealedSpecHash(sealed: SealedSecretObject): string {
  const body = ['kseal/v1 sealed spec', sealed.metadata.namespace ?? '', sealed.metadata.name, canonicalJson(sealed.spec)]
  return crypto.createHash('sha256').update(JSON.stringify(body), 'utf8').digest('hex')
}
