/** The KsealError a promise rejects with, for asserting on its code, exit code, message and place. */
export interface Failure {
  code: string
  exitCode: number
  message: string
  line: string
  where: Record<string, unknown>
}

export async function failure(p: Promise<unknown> | (() => unknown)): Promise<Failure> {
  try {
    await (typeof p === 'function' ? p() : p)
  } catch (e) {
    return e as Failure
  }
  throw new Error('expected a failure')
}
