/** Template errors: a KsealError naming the template and the line and column, never a value. */
import {KsealError} from '../../core/errors.js'

/** Line and column (1-based, columns in bytes) of an offset in a template's source. */
export function position(src: string, pos: number): {line: number; col: number} {
  let line = 1
  let lineStart = 0
  for (let i = 0; i < pos && i < src.length; i++) {
    if (src.charCodeAt(i) === 10) {
      line++
      lineStart = i + 1
    }
  }
  return {line, col: pos - lineStart + 1}
}

export class TemplateError extends KsealError {
  constructor(name: string, src: string, pos: number, message: string) {
    const p = position(src, pos)
    super('ERR_INPUT', `${name}: line ${p.line}, column ${p.col}: ${message}`)
  }
}
