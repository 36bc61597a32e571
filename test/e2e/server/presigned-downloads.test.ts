import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestServer, type TestServer } from '../../support/server.ts'

// Presigned URLs come from S3 (see postgres-s3.test.ts); local storage has none to give.
describe('presigned downloads on local storage', () => {
  let hutch: TestServer
  beforeAll(async () => {
    hutch = await startTestServer()
  })
  afterAll(async () => {
    await hutch.stop()
  })

  it('refuses ?presign=1 with invalid_request and still serves the file itself', async () => {
    expect((await hutch.request('PUT', '/v1/files/a.txt', { raw: 'content' })).status).toBe(201)
    const presigned = await hutch.request('GET', '/v1/files/a.txt?presign=1')
    expect(presigned.status).toBe(400)
    expect(presigned.json).toMatchObject({ error: { code: 'invalid_request' } })
    const plain = await hutch.request('GET', '/v1/files/a.txt?presign=0')
    expect(plain.status).toBe(200)
    expect(plain.text).toBe('content')
  })
})
