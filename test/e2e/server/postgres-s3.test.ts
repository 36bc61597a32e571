import { GetObjectCommand, HeadObjectCommand } from '@aws-sdk/client-s3'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshS3Bucket, s3Client, type FreshS3Bucket } from '../../support/ceph.ts'
import { freshPostgresDatabase, type FreshPostgresDatabase } from '../../support/postgres.ts'
import { startTestServer, type TestServer } from '../../support/server.ts'

// The boxbox flow on production state: records in PostgreSQL, files in S3 (a real Ceph RADOS
// Gateway), both checked from the outside as well as through hutch.

const apiKey = 'test-key-pg-s3'
const alice = { 'x-api-key': apiKey, 'x-user-id': 'alice', 'x-chat-id': 'chat-1' }
const pngSignature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])

interface BoxboxExecution {
  execution_id: string
  status: string
  exit_code: number
  stdout: string
  output_files: { path: string; media_type: string; size: number }[]
}

describe('boxbox flow on PostgreSQL and S3', () => {
  let database: FreshPostgresDatabase
  let bucket: FreshS3Bucket
  let hutch: TestServer

  beforeAll(async () => {
    database = await freshPostgresDatabase()
    bucket = await freshS3Bucket()
    const { server } = bucket
    hutch = await startTestServer({
      env: {
        API_KEY: apiKey,
        DATABASE_URL: database.url,
        S3_BUCKET: bucket.bucket,
        S3_ENDPOINT: server.endpoint,
        S3_REGION: server.region,
        S3_ACCESS_KEY_ID: server.accessKeyId,
        S3_SECRET_ACCESS_KEY: server.secretAccessKey,
        S3_CHECKSUM_MODE: 'when_required',
        S3_KEY_PREFIX: 'hutch/',
      },
    })
  })

  afterAll(async () => {
    await hutch.stop()
    await bucket.remove()
    await database.remove()
  })

  it('uploads, runs with the file, writes a chart to S3, downloads it and finds the record in PostgreSQL', async () => {
    const ready = await hutch.request('GET', '/ready')
    expect(ready.json).toMatchObject({
      status: 'ready',
      checks: { database: { ok: true }, storage: { ok: true } },
    })

    const upload = await hutch.request('PUT', '/v1/files/sales.csv', {
      raw: 'month,amount\njan,10\nfeb,30\nmar,20\n',
      headers: { ...alice, 'content-type': 'text/csv' },
    })
    expect(upload.status).toBe(201)
    const s3 = s3Client(bucket.server)
    try {
      const stored = await s3.send(
        new HeadObjectCommand({ Bucket: bucket.bucket, Key: 'hutch/alice/chat-1/sales.csv' }),
      )
      expect(stored.ContentLength).toBe(34)

      const run = await hutch.request('POST', '/execute', {
        headers: alice,
        body: {
          language: 'python',
          code: [
            'import os',
            'import pandas as pd',
            'import matplotlib.pyplot as plt',
            'df = pd.read_csv("sales.csv")',
            'print(df["amount"].sum())',
            'df.plot(x="month", y="amount")',
            'os.makedirs("charts", exist_ok=True)',
            'plt.savefig("charts/sales.png")',
          ].join('\n'),
          files: ['sales.csv'],
          timeout_seconds: 60,
        },
      })
      expect(run.status).toBe(200)
      const execution = run.json as BoxboxExecution
      expect(execution).toMatchObject({ status: 'completed', exit_code: 0, stdout: '60\n' })
      expect(execution.output_files).toEqual([
        { path: 'charts/sales.png', media_type: 'image/png', size: expect.any(Number) },
      ])
      const size = execution.output_files[0]?.size

      const download = await fetch(`${hutch.url}/v1/files/charts/sales.png`, { headers: alice })
      expect(download.status).toBe(200)
      expect(download.headers.get('content-disposition')).toContain('attachment')
      const png = Buffer.from(await download.arrayBuffer())
      expect(png.subarray(0, 8)).toEqual(pngSignature)
      expect(png.length).toBe(size)

      // The very object in the bucket, and a presigned URL that serves it without hutch.
      const object = await s3.send(
        new GetObjectCommand({ Bucket: bucket.bucket, Key: 'hutch/alice/chat-1/charts/sales.png' }),
      )
      expect(Buffer.from(await object.Body!.transformToByteArray()).equals(png)).toBe(true)
      const presigned = await hutch.request('GET', '/v1/files/charts/sales.png?presign=1', {
        headers: alice,
      })
      expect(presigned.status).toBe(200)
      const { url } = presigned.json as { url: string }
      expect(url.startsWith(bucket.server.endpoint)).toBe(true)
      const direct = await fetch(url)
      expect(direct.status).toBe(200)
      expect(Buffer.from(await direct.arrayBuffer()).equals(png)).toBe(true)

      const again = await hutch.request('GET', `/executions/${execution.execution_id}`, {
        headers: alice,
      })
      expect(again.status).toBe(200)
      expect(again.json).toMatchObject({
        execution_id: execution.execution_id,
        status: 'completed',
        stdout: '60\n',
      })
      const client = new pg.Client({ connectionString: database.url })
      await client.connect()
      try {
        const rows = await client.query<{ id: string; status: string }>(
          'select id, status from executions',
        )
        expect(rows.rows).toEqual([{ id: execution.execution_id, status: 'ok' }])
      } finally {
        await client.end()
      }
    } finally {
      s3.destroy()
    }
  })

  it('keeps namespaces apart in the bucket', async () => {
    const bob = { ...alice, 'x-user-id': 'bob' }
    const missing = await hutch.request('GET', '/v1/files/sales.csv', { headers: bob })
    expect(missing.status).toBe(404)
    const escaped = await hutch.request('GET', '/v1/files/..%2Falice%2Fchat-1%2Fsales.csv', {
      headers: bob,
    })
    expect([400, 404]).toContain(escaped.status)
    // Presigning checks the namespace first: no URL for another namespace's file, or none.
    for (const path of ['sales.csv', 'charts/sales.png', 'missing.txt']) {
      const presigned = await hutch.request('GET', `/v1/files/${path}?presign=1`, { headers: bob })
      expect(presigned.status, path).toBe(404)
    }
  })
})
