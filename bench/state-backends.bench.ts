/**
 * What PostgreSQL and S3 add to a run over the embedded defaults: request-to-result latency of a
 * Python run with one input file (read) and one output file (written, stored, recorded), through
 * POST /v1/execute, on SQLite + local disk (the baseline), on PostgreSQL + S3 (a local Ceph
 * RADOS Gateway on memstore, so the network and disk of a real deployment are not in it), and on
 * each alone to tell their shares apart. The servers run at once with the same warm pool, and
 * their runs are interleaved.
 *
 *   ./scripts/bench state [runs]
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { CreateBucketCommand } from '@aws-sdk/client-s3'
import pg from 'pg'
import { s3Client, startCephS3 } from '../test/support/ceph.ts'
import { closeTestPostgres, freshPostgresDatabase } from '../test/support/postgres.ts'
import { startTestServer, type TestServer } from '../test/support/server.ts'

const runs = Number(process.argv[2] ?? 60)
const root = path.resolve(import.meta.dirname, '..')
const headers = { 'content-type': 'application/json', 'x-user-id': 'bench', 'x-chat-id': 'chat' }
const body = JSON.stringify({
  language: 'python',
  code: 'data = open("in.csv").read()\nopen("out.txt", "w").write(data.upper())\nprint(len(data))',
  files: ['in.csv'],
})
const input = 'month,amount\n' + Array.from({ length: 200 }, (_, i) => `m${i},${i}`).join('\n')

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const result = await client.query<{ server_version: string }>('show server_version')
    return result.rows[0]?.server_version.split(' ')[0] ?? '?'
  } finally {
    await client.end()
  }
}

async function once(server: TestServer): Promise<number> {
  const t0 = performance.now()
  const response = await fetch(`${server.url}/v1/execute`, { method: 'POST', headers, body })
  const result = (await response.json()) as { stdout?: string; outputFiles?: unknown[] }
  const elapsedMs = performance.now() - t0
  if (result.stdout !== `${input.length}\n` || result.outputFiles?.length !== 1) {
    throw new Error(`run failed: ${JSON.stringify(result)}`)
  }
  return elapsedMs
}

const ceph = await startCephS3()
const databases = [await freshPostgresDatabase(), await freshPostgresDatabase()]
const servers: TestServer[] = []
try {
  const bucket = 'hutch-bench'
  const client = s3Client(ceph)
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
  client.destroy()
  const pool = {
    HUTCH_POOL_MIN_WARM: '2',
    HUTCH_POOL_MAX_WARM: '4',
    HUTCH_RATE_LIMIT_PER_MINUTE: '0',
  }
  const s3 = (keyPrefix: string) => ({
    S3_BUCKET: bucket,
    S3_ENDPOINT: ceph.endpoint,
    S3_REGION: ceph.region,
    S3_ACCESS_KEY_ID: ceph.accessKeyId,
    S3_SECRET_ACCESS_KEY: ceph.secretAccessKey,
    S3_CHECKSUM_MODE: 'when_required',
    S3_KEY_PREFIX: keyPrefix,
  })
  const configurations: { label: string; env: Record<string, string> }[] = [
    { label: 'SQLite + local disk (baseline)', env: {} },
    { label: 'PostgreSQL + local disk', env: { DATABASE_URL: databases[0]?.url ?? '' } },
    { label: 'SQLite + S3', env: s3('s3-only/') },
    { label: 'PostgreSQL + S3', env: { DATABASE_URL: databases[1]?.url ?? '', ...s3('both/') } },
  ]
  for (const { env } of configurations) {
    servers.push(await startTestServer({ env: { ...pool, ...env } }))
  }
  const samples = servers.map((): number[] => [])
  for (const server of servers) {
    const upload = await fetch(`${server.url}/v1/files/in.csv`, {
      method: 'PUT',
      headers: { ...headers, 'content-type': 'text/csv' },
      body: input,
    })
    if (upload.status !== 201) throw new Error(`upload failed: ${await upload.text()}`)
    for (let warmUp = 0; warmUp < 3; warmUp += 1) await once(server)
  }
  for (let index = 0; index < runs; index += 1) {
    // Interleaved, in an order that turns, so that whatever else the machine does falls on all.
    for (let step = 0; step < servers.length; step += 1) {
      const which = (index + step) % servers.length
      const server = servers[which]
      if (server !== undefined) samples[which]?.push(await once(server))
    }
  }

  const base = samples[0] ?? []
  const baseMedian = percentile(base, 50)
  const baseP99 = percentile(base, 99)
  const row = (label: string, values: number[]) => {
    const median = percentile(values, 50)
    const p99 = percentile(values, 99)
    return `| ${label} | ${median.toFixed(1)} | ${p99.toFixed(1)} | ${(median - baseMedian).toFixed(1)} | ${(p99 - baseP99).toFixed(1)} | ${(median / baseMedian).toFixed(2)}x |`
  }
  const table = [
    `Python run with one input and one output file over POST /v1/execute, ${runs} runs each, interleaved, after 3 warm-ups; warm pool 2-4. PostgreSQL ${await postgresVersion(databases[0]?.url ?? '')} on 127.0.0.1, S3: Ceph RADOS Gateway (memstore) on 127.0.0.1. ${os.cpus()[0]?.model ?? ''}, ${os.availableParallelism()} CPUs, Node ${process.version}.`,
    '',
    '| state | median ms | p99 ms | added median ms | added p99 ms | median vs baseline |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...configurations.map(({ label }, index) => row(label, samples[index] ?? [])),
  ].join('\n')
  fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true })
  fs.writeFileSync(path.join(root, 'bench/results/state-backends.md'), `${table}\n`)
  process.stdout.write(`${table}\n`)
} finally {
  for (const server of servers) await server.stop()
  for (const database of databases) await database.remove()
  await closeTestPostgres()
  await ceph.remove()
}
