/**
 * `kseal seal`: every v1 Secret of a manifest stream sealed into a SealedSecret, every other document
 * as it was; and `--merge-into`, which adds a Secret's values to the one SealedSecret of a file.
 */
import type {Document} from 'yaml'
import type {Recipient} from '../../keys/types.js'
import type {Scope} from '../envelope/binding.js'
import {isKsealError, KsealError, type Where} from '../core/errors.js'
import {readStdin, readText, STDIN, writeAtomic} from '../core/files.js'
import {isList, isObj, type Obj} from '../core/guards.js'
import {applyEdits} from '../manifest/edits.js'
import {documentEdit, type ObjectStep} from '../manifest/objects.js'
import {isCoreSecret, parseManifests} from '../manifest/parse.js'
import {parseSealedSecret} from '../sealed/parse.js'
import {mergeIntoSealed, sealSecret} from '../sealed/seal.js'
import {isKsealSealedSecret} from '../sealed/types.js'

/** The step that seals each v1 Secret of a stream. */
export function sealStep(recipients: Recipient[], scope: Scope): ObjectStep {
  return async (o) => (isCoreSecret(o.kind, o.apiVersion) ? ((await sealSecret(o, recipients, scope)) as unknown as Obj) : null)
}

/** The one v1 Secret in a manifest text (also inside a List), for `--merge-into`. */
function singleSecret(text: string, file: string | undefined): Obj {
  const p = parseManifests(text, file)
  const found: Obj[] = []
  for (const doc of p.docs) {
    if (doc.contents === null) continue
    const js = doc.toJS({maxAliasCount: 100}) as unknown
    if (!isObj(js)) continue
    for (const o of isList(js) ? js.items : [js]) if (isObj(o) && isCoreSecret(o.kind, o.apiVersion)) found.push(o)
  }
  const where: Where = {file: file ?? '(stdin)'}
  if (found.length === 0) throw new KsealError('ERR_INPUT', 'no v1 Secret to merge in the input', where)
  if (found.length > 1) throw new KsealError('ERR_USAGE', `--merge-into takes one Secret; the input has ${found.length}`, where)
  return found[0]
}

/**
 * Merges a Secret's values into the one kseal SealedSecret of a file's text and returns the new
 * text: YAML stays YAML (comments and other documents kept), JSON stays JSON.
 */
export async function mergeIntoText(text: string, file: string, secret: Obj, recipients: Recipient[], scope?: Scope): Promise<string> {
  const p = parseManifests(text, file)
  const where: Where = {file}
  const targets = p.docs.flatMap((doc, i) => {
    const js = doc.contents === null ? null : (doc.toJS({maxAliasCount: 100}) as unknown)
    return isKsealSealedSecret(js) ? [{doc, js: js as Obj, i}] : []
  })
  if (targets.length !== 1) {
    throw new KsealError(
      'ERR_INPUT',
      `--merge-into needs a file with exactly one kseal SealedSecret; this one has ${targets.length}`,
      where,
    )
  }
  const {doc, js, i} = targets[0]
  const has = (js.spec as {envelope?: {scope?: unknown}} | undefined)?.envelope?.scope
  if (scope && has !== scope) {
    throw new KsealError(
      'ERR_USAGE',
      `--scope ${scope} differs from the SealedSecret's scope ${JSON.stringify(has ?? null)}; merged values keep the file's scope`,
      where,
    )
  }
  let merged
  try {
    merged = await mergeIntoSealed(parseSealedSecret(js), secret, recipients)
  } catch (e) {
    throw isKsealError(e) ? e.at({...where, document: i + 1}) : e
  }
  const {encryptedData, envelope} = merged.spec
  if (/^\uFEFF?\s*[{[]/.test(text) && p.docs.length === 1) {
    const spec = isObj(js.spec) ? js.spec : {}
    return JSON.stringify({...js, spec: {...spec, encryptedData, envelope}}, null, 2) + '\n'
  }
  setSealedSpec(doc, [], js, {encryptedData, envelope})
  return applyEdits(p.text, [documentEdit(p, doc, where)])
}

/**
 * Writes new ciphertext into a SealedSecret in a parsed document (at `path`, for one inside a List),
 * editing the document in place so comments and key order survive; only changed values are set.
 */
export function setSealedSpec(
  doc: Document,
  path: (string | number)[],
  current: Obj,
  spec: {encryptedData: Record<string, string>; envelope: unknown},
): void {
  const before = isObj(current.spec) && isObj(current.spec.encryptedData) ? current.spec.encryptedData : {}
  for (const [k, v] of Object.entries(spec.encryptedData)) if (before[k] !== v) doc.setIn([...path, 'spec', 'encryptedData', k], v)
  doc.setIn([...path, 'spec', 'envelope'], doc.createNode(spec.envelope))
}

/**
 * `kseal seal --merge-into FILE`: reads the one Secret from the inputs, merges its values into FILE's
 * SealedSecret and replaces FILE atomically. FILE is left as it was on any failure.
 */
export async function mergeIntoFile(target: string, inputs: string[], recipients: Recipient[], scope?: Scope): Promise<void> {
  if (inputs.length > 1) throw new KsealError('ERR_USAGE', '--merge-into reads one Secret from one file or stdin')
  const input = inputs[0] ?? STDIN
  const secretText = input === STDIN ? await readStdin() : await readText(input)
  const secret = singleSecret(secretText, input === STDIN ? undefined : input)
  const text = await readText(target)
  const out = await mergeIntoText(text, target, secret, recipients, scope)
  await writeAtomic(target, out)
}
