/**
 * kubesec files (shyiko/kubesec, format versions 3 and 4): read, verify the MAC, decrypt in place.
 * Keys come from the same SopsMasterKeys as SOPS files (gpg, AWS KMS, a pluggable GCP KMS unwrap).
 *
 *   const opened = await openKubesec(parseKubesec(text, file), keys)  // throws KsealError with `where`
 *   decryptedKubesecText(opened)                                       // plaintext, footers removed
 */
export {decryptedKubesecText, looksLikeKubesec, openKubesec, parseKubesec} from './read.js'
export type {KubesecDoc, KubesecFile, KubesecValue, OpenedKubesec, OpenedKubesecSecret} from './read.js'
export {isKubesecCiphertext} from './format.js'
export type {Footer, KubesecKey, KubesecKeyType} from './format.js'
