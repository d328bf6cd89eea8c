/** A controller logger that drops every line, for tests that do not look at the log. */
import {createLogger, type Logger} from '../../src/controller/log.js'

export const silentLogger: Logger = createLogger({write: () => undefined})
