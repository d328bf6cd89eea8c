/**
 * Cheap tests for other tools' encrypted files, for dispatch on every text a command reads: plain
 * kseal files pay two substring/regex scans and import nothing of the formats' code.
 */

/** Does this text look like a SOPS file at all (YAML, JSON, dotenv or INI)? */
export function looksLikeSops(text: string): boolean {
  return text.includes('ENC[AES256_GCM,') && (hasSopsBlock(text) || /^sops_mac=/m.test(text) || /^\[sops\]/m.test(text))
}

/** Does this text hold a `sops:` line (YAML) or a `"sops": {` entry (JSON)? */
export function hasSopsBlock(text: string): boolean {
  return /^sops:[ \t]*\r?$/m.test(text) || /"sops"\s*:\s*\{/.test(text)
}

/** Does this text hold a line that starts a kubesec footer? */
export function looksLikeKubesec(text: string): boolean {
  return /^# kubesec:v:/m.test(text)
}

/** Does this text hold a SOPS or kubesec document? */
export function looksForeign(text: string): boolean {
  return looksLikeSops(text) || looksLikeKubesec(text)
}
