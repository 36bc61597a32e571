import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freshS3Bucket, type FreshS3Bucket } from '../../support/ceph.ts'
import { startThrowawayPostgres, type ThrowawayPostgres } from '../../support/postgres.ts'
import { startTestServer, type TestServer } from '../../support/server.ts'

// The database or the object store goes away under a running server, really (the servers are
// stopped, or frozen, and started again): requests fail fast with a 503 that says why, /ready
// names the dependency, nothing half-written is left, and service resumes by itself.

// Generous: "fast" means seconds, not the minutes of a client's default timeouts.
const failFastMs = 15_000

interface ErrorBody {
  error: { code: string; message: string }
}
interface Readiness {
  status: string
  checks: Record<string, { ok: boolean; reason?: string }>
}
interface ExecutionList {
  items: { id: string; status: string; outputFiles: { path: string }[] }[]
}

async function timed<T>(action: () => Promise<T>): Promise<{ result: T; elapsedMs: number }> {
  const startedAt = Date.now()
  const result = await action()
  return { result, elapsedMs: Date.now() - startedAt }
}

async function waitUntilReady(hutch: TestServer, timeoutMs = 30_000): Promise<Readiness> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const ready = await hutch.request('GET', '/ready')
    if (ready.status === 200 || Date.now() > deadline) return ready.json as Readiness
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const printOne = { language: 'python', code: 'print(1)' }
const writesFile = (name: string) => ({
  language: 'python',
  code: `open(${JSON.stringify(name)}, "w").write("made while a dependency was down")`,
})

describe('PostgreSQL stopped and started under a running server', () => {
  let postgres: ThrowawayPostgres
  let hutch: TestServer

  beforeAll(async () => {
    postgres = await startThrowawayPostgres()
    hutch = await startTestServer({
      env: {
        DATABASE_URL: postgres.url,
        DATABASE_CONNECT_TIMEOUT_MS: '1000',
        DATABASE_STATEMENT_TIMEOUT_MS: '5000',
      },
    })
  })

  afterAll(async () => {
    await hutch.stop()
    await postgres.remove()
  })

  it('answers 503 backend_unavailable fast, /ready names the database, and resumes', async () => {
    expect((await hutch.request('POST', '/v1/execute', { body: printOne })).status).toBe(200)

    await postgres.stop()
    const run = await timed(() =>
      hutch.request('POST', '/v1/execute', { body: writesFile('orphan.txt') }),
    )
    expect(run.result.status).toBe(503)
    expect((run.result.json as ErrorBody).error).toMatchObject({ code: 'backend_unavailable' })
    expect((run.result.json as ErrorBody).error.message).not.toBe('')
    expect(run.elapsedMs).toBeLessThan(failFastMs)

    const list = await timed(() => hutch.request('GET', '/v1/executions'))
    expect(list.result.status).toBe(503)
    expect(list.elapsedMs).toBeLessThan(failFastMs)

    const ready = await hutch.request('GET', '/ready')
    expect(ready.status).toBe(503)
    const readiness = ready.json as Readiness
    expect(readiness.checks['database']).toMatchObject({ ok: false, reason: expect.any(String) })
    expect(readiness.checks['storage']).toEqual({ ok: true })

    await postgres.start()
    expect(await waitUntilReady(hutch)).toMatchObject({ status: 'ready' })
    const after = await hutch.request('POST', '/v1/execute', { body: printOne })
    expect(after.status).toBe(200)
    expect(after.json).toMatchObject({ status: 'ok', stdout: '1\n' })

    // The refused run left neither a record nor a file.
    const records = (await hutch.request('GET', '/v1/executions')).json as ExecutionList
    expect(records.items).toHaveLength(2)
    expect(records.items.every((item) => item.status === 'ok')).toBe(true)
    expect((await hutch.request('GET', '/v1/files/orphan.txt')).status).toBe(404)
  })
})

/**
 * Starts a run that sleeps and then writes late.txt, and stops PostgreSQL once its record is
 * `running` (the program is asleep); expects the run's answer to be a 503 naming the record, and
 * returns the record's id and how long the answer took.
 */
async function runWhilePostgresStops(
  hutch: TestServer,
  postgres: ThrowawayPostgres,
): Promise<{ id: string; elapsedMs: number }> {
  const run = timed(() =>
    hutch.request('POST', '/v1/execute', {
      body: {
        language: 'python',
        code: 'import time\ntime.sleep(4)\nopen("late.txt", "w").write("late")',
      },
    }),
  )
  let id: string | undefined
  // A slow host may take seconds to start the run (a fork server starting, a busy pool).
  const deadline = Date.now() + 30_000
  while (id === undefined && Date.now() < deadline) {
    const listed = (await hutch.request('GET', '/v1/executions')).json as ExecutionList
    id = listed.items.find((record) => record.status === 'running')?.id
    if (id === undefined) await new Promise((resolve) => setTimeout(resolve, 20))
  }
  expect(id).toBeDefined()
  await postgres.stop()
  const { result, elapsedMs } = await run
  expect(result.status).toBe(503)
  expect(result.json).toMatchObject({
    error: { code: 'backend_unavailable', details: { executionId: id } },
  })
  return { id: id ?? '', elapsedMs }
}

/** A logger whose lines the test reads. */
function capturingLogger(): {
  logger: pino.Logger
  lines: { level: number; msg: string; executionId?: string; outputFiles?: string[] }[]
} {
  const lines: { level: number; msg: string; executionId?: string; outputFiles?: string[] }[] = []
  const logger = pino(
    { level: 'info' },
    { write: (line: string) => lines.push(JSON.parse(line) as (typeof lines)[number]) },
  )
  return { logger, lines }
}

const pinoError = 50

describe('PostgreSQL stopped while a run is in progress', () => {
  let postgres: ThrowawayPostgres
  let hutch: TestServer

  beforeAll(async () => {
    postgres = await startThrowawayPostgres()
    hutch = await startTestServer({
      env: {
        DATABASE_URL: postgres.url,
        DATABASE_CONNECT_TIMEOUT_MS: '1000',
        DATABASE_STATEMENT_TIMEOUT_MS: '5000',
      },
    })
  })

  afterAll(async () => {
    await hutch.stop()
    await postgres.remove()
  })

  // The run's output files are stored before its record is finished. When finishing fails, the
  // server keeps the end and writes it once the database is back: the record then lists the
  // files it stored, and the answer (a 503) names the execution to fetch.
  it('finishes the record of a run that ended while the database was down once it returns', async () => {
    const { id, elapsedMs } = await runWhilePostgresStops(hutch, postgres)
    expect(elapsedMs).toBeLessThan(failFastMs + 4_000)
    // The file is stored, the record cannot say so yet.
    expect((await hutch.request('GET', '/v1/files/late.txt')).status).toBe(200)

    await postgres.start()
    expect(await waitUntilReady(hutch)).toMatchObject({ status: 'ready' })
    // Generous: the server retries with backoff; a read of the record also writes it.
    const deadline = Date.now() + 30_000
    let record: ExecutionList['items'][number] | undefined
    for (;;) {
      const listed = (await hutch.request('GET', '/v1/executions')).json as ExecutionList
      record = listed.items.find((item) => item.id === id)
      if (record?.status !== 'running' || Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
    expect(record).toMatchObject({ status: 'ok', outputFiles: [{ path: 'late.txt' }] })
    const stored = await hutch.request('GET', '/v1/files/late.txt')
    expect({ status: stored.status, body: stored.text }).toEqual({ status: 200, body: 'late' })
    const fetched = await hutch.request('GET', `/v1/executions/${id}`)
    expect(fetched.json).toMatchObject({ status: 'ok', outputFiles: [{ path: 'late.txt' }] })
  })
})

describe('PostgreSQL away longer than the server keeps the end of a run', () => {
  let postgres: ThrowawayPostgres
  let hutch: TestServer
  const { logger, lines } = capturingLogger()

  beforeAll(async () => {
    postgres = await startThrowawayPostgres()
    hutch = await startTestServer({
      env: {
        DATABASE_URL: postgres.url,
        DATABASE_CONNECT_TIMEOUT_MS: '1000',
        DATABASE_STATEMENT_TIMEOUT_MS: '5000',
        HUTCH_EXECUTION_RECORD_RETRY_MS: '1000',
      },
      logger,
    })
  })

  afterAll(async () => {
    await hutch.stop()
    await postgres.remove()
  })

  it('gives up after HUTCH_EXECUTION_RECORD_RETRY_MS with an error naming the run and its files', async () => {
    const { id } = await runWhilePostgresStops(hutch, postgres)
    const gaveUp = () => lines.find((line) => line.level === pinoError && line.executionId === id)
    const deadline = Date.now() + 30_000
    while (gaveUp() === undefined && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    expect(gaveUp()).toMatchObject({
      msg: expect.stringContaining('stayed unavailable for 1000 ms'),
      outputFiles: ['late.txt'],
    })

    // Nothing holds the end any more: the record stays as the database last saw it.
    await postgres.start()
    expect(await waitUntilReady(hutch)).toMatchObject({ status: 'ready' })
    const fetched = await hutch.request('GET', `/v1/executions/${id}`)
    expect(fetched.json).toMatchObject({ status: 'running', outputFiles: [] })
  })
})

describe('a server shut down while it keeps the end of a run', () => {
  let postgres: ThrowawayPostgres

  beforeAll(async () => {
    postgres = await startThrowawayPostgres()
  })

  afterAll(async () => {
    await postgres.remove()
  })

  const env = () => ({
    DATABASE_URL: postgres.url,
    DATABASE_CONNECT_TIMEOUT_MS: '1000',
    DATABASE_STATEMENT_TIMEOUT_MS: '5000',
  })

  it('logs the end it cannot write while the database is down', async () => {
    const { logger, lines } = capturingLogger()
    const hutch = await startTestServer({ env: env(), logger })
    let id: string
    try {
      ;({ id } = await runWhilePostgresStops(hutch, postgres))
    } finally {
      await hutch.stop()
      await postgres.start()
    }
    expect(lines.find((line) => line.level === pinoError && line.executionId === id)).toMatchObject(
      {
        msg: expect.stringContaining('the server is shutting down'),
        outputFiles: ['late.txt'],
      },
    )
  })

  it('writes the end in its last attempt once the database is back', async () => {
    const hutch = await startTestServer({ env: env() })
    let id: string
    try {
      ;({ id } = await runWhilePostgresStops(hutch, postgres))
      // The retries back off (250 ms doubling to 5 s): after 8.5 s the next one is seconds away,
      // so the shutdown, not a retry, is what writes the record.
      await new Promise((resolve) => setTimeout(resolve, 8_500))
      await postgres.start()
    } finally {
      await hutch.stop()
    }
    // A new server on the same database: its start fails only records nobody finished.
    const next = await startTestServer({ env: env() })
    try {
      const fetched = await next.request('GET', `/v1/executions/${id}`)
      expect(fetched.json).toMatchObject({ status: 'ok', outputFiles: [{ path: 'late.txt' }] })
    } finally {
      await next.stop()
    }
  })
})

describe('the S3 gateway stopped, frozen and started under a running server', () => {
  let bucket: FreshS3Bucket
  let hutch: TestServer

  beforeAll(async () => {
    bucket = await freshS3Bucket()
    const { server } = bucket
    hutch = await startTestServer({
      env: {
        S3_BUCKET: bucket.bucket,
        S3_ENDPOINT: server.endpoint,
        S3_REGION: server.region,
        S3_ACCESS_KEY_ID: server.accessKeyId,
        S3_SECRET_ACCESS_KEY: server.secretAccessKey,
        S3_CHECKSUM_MODE: 'when_required',
        S3_TIMEOUT_MS: '1500',
      },
    })
  })

  afterAll(async () => {
    await hutch.stop()
    await bucket.remove()
  })

  it('answers 503 backend_unavailable fast, /ready names storage, records agree with files, and resumes', async () => {
    const upload = await hutch.request('PUT', '/v1/files/in.txt', { raw: 'input' })
    expect(upload.status).toBe(201)

    await bucket.server.stopGateway()
    try {
      const put = await timed(() => hutch.request('PUT', '/v1/files/new.txt', { raw: 'x' }))
      expect(put.result.status).toBe(503)
      expect((put.result.json as ErrorBody).error).toMatchObject({ code: 'backend_unavailable' })
      expect(put.elapsedMs).toBeLessThan(failFastMs)

      const withInput = await timed(() =>
        hutch.request('POST', '/v1/execute', {
          body: { language: 'python', code: 'print(open("in.txt").read())', files: ['in.txt'] },
        }),
      )
      expect(withInput.result.status).toBe(503)
      expect(withInput.elapsedMs).toBeLessThan(failFastMs)

      // The run itself works; storing what it wrote cannot: the run must not claim the file.
      const output = await timed(() =>
        hutch.request('POST', '/v1/execute', { body: writesFile('out.txt') }),
      )
      expect(output.result.status).toBe(503)
      expect((output.result.json as ErrorBody).error).toMatchObject({
        code: 'backend_unavailable',
      })
      expect(output.elapsedMs).toBeLessThan(failFastMs)

      const ready = await hutch.request('GET', '/ready')
      expect(ready.status).toBe(503)
      const readiness = ready.json as Readiness
      expect(readiness.checks['storage']).toMatchObject({ ok: false, reason: expect.any(String) })
      expect(readiness.checks['database']).toEqual({ ok: true })
    } finally {
      await bucket.server.startGateway()
    }
    expect(await waitUntilReady(hutch)).toMatchObject({ status: 'ready' })

    const records = (await hutch.request('GET', '/v1/executions')).json as ExecutionList
    for (const record of records.items) {
      for (const file of record.outputFiles) {
        const stored = await hutch.request('GET', `/v1/files/${file.path}`)
        expect(stored.status, `${record.status} run lists ${file.path}`).toBe(200)
      }
    }
    const produced = await hutch.request('GET', '/v1/files/out.txt')
    const claimed = records.items.some((record) =>
      record.outputFiles.some((file) => file.path === 'out.txt'),
    )
    expect(produced.status === 200).toBe(claimed)
    expect((await hutch.request('GET', '/v1/files/new.txt')).status).toBe(404)

    const run = await hutch.request('POST', '/v1/execute', {
      body: { language: 'python', code: 'print(open("in.txt").read())', files: ['in.txt'] },
    })
    expect(run.status).toBe(200)
    expect(run.json).toMatchObject({ status: 'ok', stdout: 'input\n' })
  })

  it('a frozen gateway (a slow store) fails requests after the S3 timeout, not never', async () => {
    bucket.server.pauseGateway()
    try {
      const put = await timed(() => hutch.request('PUT', '/v1/files/slow.txt', { raw: 'x' }))
      expect(put.result.status).toBe(503)
      expect((put.result.json as ErrorBody).error).toMatchObject({ code: 'backend_unavailable' })
      expect(put.elapsedMs).toBeLessThan(failFastMs)
      const ready = await hutch.request('GET', '/ready')
      expect((ready.json as Readiness).checks['storage']).toMatchObject({ ok: false })
    } finally {
      bucket.server.resumeGateway()
    }
    expect(await waitUntilReady(hutch)).toMatchObject({ status: 'ready' })
    expect((await hutch.request('PUT', '/v1/files/slow.txt', { raw: 'x' })).status).toBe(201)
  })
})
