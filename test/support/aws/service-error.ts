/** What the AWS SDK throws when a service answers with an error: the fields the tests look at. */
export interface ServiceError extends Error {
  $metadata: {httpStatusCode?: number; attempts?: number; requestId?: string}
  $fault: string
  $response?: {headers: Record<string, string>}
}

/** Await an SDK call that must fail with a service's error answer (anything else is rethrown); return it. */
export async function serviceError(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p
  } catch (e) {
    if ((e as Partial<ServiceError>).$metadata === undefined) throw e
    return e as ServiceError
  }
  throw new Error('expected the call to fail')
}
