/**
 * SOPS files (getsops/sops 2.x and 3.x, YAML and JSON): read, verify (the MAC, always), decrypt in
 * place, write for Secrets, re-encrypt keeping unchanged ciphertexts. The entry points for the
 * commands; docs/formats/sops.md describes them and the format.
 *
 *   const keys = new SopsMasterKeys(backends, {keyring})             // age, pgp (gpg), AWS KMS
 *   const opened = await openSops(parseSops(text, {file}), keys) // throws KsealError with `where`
 *   decryptedText(opened)                                       // plaintext, sops blocks removed
 *   reencryptSops(opened, editedText)                           // unchanged values keep their ENC[…]
 *   await encryptSecretsToSops(text, {recipients: await sopsRecipients(uris, backends), keys})
 */
export {decryptedText, describeSops, looksLikeSops, openSops, parseSops, recipientNames, sopsDialect} from './read.js'
export type {OpenedGroup, OpenedSops, SopsComment, SopsDocInfo, SopsFile, SopsGroup, SopsValue} from './read.js'
export {encryptSecretsToSops, reencryptSops, encryptSops, SECRET_RULES} from './write.js'
export type {EncryptSecretsOptions, SopsGroupKeys, SopsWriteOptions} from './write.js'
export {SopsMasterKeys, sopsRecipients, toSopsRecipient} from './masterkeys.js'
export type {GcpKmsUnwrap, SopsMasterKeyOptions, SopsRecipient} from './masterkeys.js'
export {entryName, SOPS_WRITE_VERSION} from './metadata.js'
export type {KeyEntry, SopsMetadata} from './metadata.js'
export type {RuleSpec} from './rules.js'
export type {TypedValue} from './cipher.js'
