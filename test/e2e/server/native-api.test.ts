import path from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from '../../support/server.ts'
import { startTestServer } from '../../support/server.ts'

const bob = { 'x-user-id': 'bob', 'x-chat-id': 'c1' }

describe('native API /v1', () => {
  let hutch: TestServer
  beforeAll(async () => {
    hutch = await startTestServer()
  })
  afterAll(async () => {
    await hutch.stop()
  })

  it('POST /v1/execute answers the whole result with the wire names', async () => {
    const response = await hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: {
        language: 'python',
        code: 'import sys\nprint(sys.stdin.read(), sys.argv[1:])\nopen("out.txt", "w").write("hi")',
        stdin: 'in',
        args: ['a'],
        inlineFiles: { 'given.txt': 'inline' },
        timeoutMs: 20_000,
        limits: { memoryBytes: 256 * 1024 * 1024 },
      },
    })
    expect(response.status).toBe(200)
    expect(response.json).toMatchObject({
      id: expect.any(String),
      status: 'ok',
      exitCode: 0,
      signal: null,
      stdout: "in ['a']\n",
      stderr: '',
      stdoutTruncated: false,
      stderrTruncated: false,
      results: [],
      outputFiles: [
        { path: 'out.txt', mediaType: 'text/plain', size: 2, url: '/v1/files/out.txt' },
      ],
      usage: {
        wallMs: expect.any(Number),
        cpuMs: expect.any(Number),
        peakMemoryBytes: expect.any(Number),
      },
      timings: {
        queueMs: expect.any(Number),
        syncInMs: expect.any(Number),
        runMs: expect.any(Number),
        syncOutMs: expect.any(Number),
      },
      createdAt: expect.any(String),
      finishedAt: expect.any(String),
    })
    const id = (response.json as { id: string }).id
    const record = await hutch.request('GET', `/v1/executions/${id}`, { headers: bob })
    expect(record.json).toMatchObject({ id, status: 'ok', stdout: "in ['a']\n" })
    const list = await hutch.request('GET', '/v1/executions?limit=5', { headers: bob })
    expect((list.json as { items: { id: string }[] }).items[0]?.id).toBe(id)
  })

  it('records every phase in order: a long one while it lasts, a short one with the end', async () => {
    const started = hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: { language: 'python', code: 'import time\ntime.sleep(1.5)\nprint("slept")' },
    })
    // The run is in its `running` phase long enough for the record to say so before it ends.
    let seen: unknown
    const deadline = Date.now() + 20_000
    while (seen !== 'running' && Date.now() < deadline) {
      const listed = await hutch.request('GET', '/v1/executions?limit=5', { headers: bob })
      const items = (listed.json as { items: { status: string; stdout: string }[] }).items
      seen = items.find((item) => item.status === 'running')?.status
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
    expect(seen).toBe('running')
    const slow = await started
    expect(slow.json).toMatchObject({ status: 'ok', stdout: 'slept\n' })
    const quick = await hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: { language: 'python', code: 'print(1)' },
    })
    const database = new Database(path.join(hutch.dataDir, 'hutch.db'), { readonly: true })
    try {
      for (const id of [(slow.json as { id: string }).id, (quick.json as { id: string }).id]) {
        const row = database
          .prepare('select status_history from executions where id = ?')
          .get(id) as { status_history: string }
        const history = JSON.parse(row.status_history) as { status: string; at: string }[]
        expect(history.map((entry) => entry.status)).toEqual([
          'pending',
          'syncing_in',
          'running',
          'syncing_out',
          'ok',
        ])
        const times = history.map((entry) => Date.parse(entry.at))
        expect([...times].sort((a, b) => a - b)).toEqual(times)
      }
    } finally {
      database.close()
    }
  })

  it('streams server-sent events: start, stdout, stderr, result, end', async () => {
    const response = await fetch(`${hutch.url}/v1/execute`, {
      method: 'POST',
      headers: { ...bob, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({
        language: 'python',
        code: 'import sys, time\nprint("one", flush=True)\ntime.sleep(0.3)\nprint("two", file=sys.stderr)',
      }),
    })
    expect(response.headers.get('content-type')).toContain('text/event-stream')
    const text = await response.text()
    const events = [...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])
    expect(events[0]).toBe('start')
    expect(events).toContain('stdout')
    expect(events).toContain('stderr')
    expect(events.slice(-2)).toEqual(['result', 'end'])
    expect(events.indexOf('stdout')).toBeLessThan(events.indexOf('result'))
    const result = JSON.parse(/event: result\ndata: (.*)\n/.exec(text)?.[1] ?? '{}') as {
      stdout: string
    }
    expect(result.stdout).toBe('one\n')
  })

  it('streams an error event for bad input', async () => {
    const response = await fetch(`${hutch.url}/v1/execute`, {
      method: 'POST',
      headers: { ...bob, accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ language: 'python', code: 'print(1)', files: ['nope.csv'] }),
    })
    const text = await response.text()
    expect(text).toContain('event: error')
    expect(text).toContain('file_not_found')
    expect(text.trimEnd().endsWith('data: {}')).toBe(true)
  })

  it('uploads (raw and multipart), lists, downloads and deletes files', async () => {
    const raw = await hutch.request('PUT', '/v1/files/docs/readme.md', {
      raw: '# hi',
      headers: bob,
    })
    expect(raw.status).toBe(201)
    expect(raw.json).toMatchObject({ path: 'docs/readme.md', size: 4, mediaType: 'text/markdown' })
    const form = new FormData()
    form.append('file', new Blob(['a,b\n1,2\n']), 'table.csv')
    const multipart = await fetch(`${hutch.url}/v1/files?dir=data`, {
      method: 'POST',
      headers: bob,
      body: form,
    })
    expect(multipart.status).toBe(201)
    const listed = await hutch.request('GET', '/v1/files', { headers: bob })
    const paths = (listed.json as { files: { path: string }[] }).files.map((f) => f.path)
    expect(paths).toEqual(expect.arrayContaining(['docs/readme.md', 'data/table.csv']))
    const download = await fetch(`${hutch.url}/v1/files/data/table.csv`, { headers: bob })
    expect(await download.text()).toBe('a,b\n1,2\n')
    expect(download.headers.get('content-disposition')).toMatch(/^attachment; filename="table.csv"/)
    const deleted = await hutch.request('DELETE', '/v1/files/data/table.csv', { headers: bob })
    expect(deleted.status).toBe(204)
    const gone = await hutch.request('GET', '/v1/files/data/table.csv', { headers: bob })
    expect(gone.status).toBe(404)
    expect(gone.json).toMatchObject({ error: { code: 'not_found', requestId: expect.any(String) } })
  })

  it('reports files it did not copy out, and why, in the result and the record', async () => {
    const response = await hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: { language: 'bash', code: 'ln -s /etc/passwd link; mkfifo fifo; echo ok > real.txt' },
    })
    const result = response.json as { id: string; skippedFiles: { path: string; reason: string }[] }
    expect(result.skippedFiles).toEqual([
      { path: 'fifo', reason: 'not_regular' },
      { path: 'link', reason: 'symlink' },
    ])
    const record = await hutch.request('GET', `/v1/executions/${result.id}`, { headers: bob })
    expect((record.json as typeof result).skippedFiles).toEqual(result.skippedFiles)
  })

  it('refuses a path leaving the namespace', async () => {
    const attack = await hutch.request('PUT', '/v1/files/..%2F..%2Fescape.txt', {
      raw: 'x',
      headers: bob,
    })
    expect(attack.status).toBe(400)
    expect(attack.json).toMatchObject({ error: { code: 'invalid_path' } })
  })

  it('validates every field with a clear error', async () => {
    for (const body of [
      { language: 'python', code: 'x', timeoutMs: -1 },
      { language: 'python', code: 'x', limits: { memoryBytes: 'lots' } },
      { language: 'python', code: 'x', network: 'internet' },
      { language: 'python', code: 'x', unknownField: true },
      { code: 'x' },
    ]) {
      const response = await hutch.request('POST', '/v1/execute', { headers: bob, body })
      expect(response.status, JSON.stringify(body)).toBe(400)
      expect(response.json).toMatchObject({ error: { code: 'invalid_request' } })
    }
    const language = await hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: { language: 'cobol', code: 'x' },
    })
    expect(language.json).toMatchObject({ error: { code: 'unsupported_language' } })
    const host = await hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: { language: 'python', code: 'x', network: 'host' },
    })
    expect(host.json).toMatchObject({ error: { code: 'invalid_request' } })
  })

  it('clamps a limit above the server maximum', async () => {
    const response = await hutch.request('POST', '/v1/execute', {
      headers: bob,
      body: {
        language: 'python',
        code: 'print("ok")',
        timeoutMs: 10 ** 9,
        limits: { pids: 10 ** 6 },
      },
    })
    expect(response.json).toMatchObject({ status: 'ok', stdout: 'ok\n' })
  })

  it('lends python runs a warm python sandbox (one with nothing preloaded for standard-library-only code) and bash runs a warm bash one (fast path)', async () => {
    type Stats = { name: string; warm: number; hits: number }
    const pools = async () =>
      ((await hutch.request('GET', '/v1/pool')).json as { pools: Stats[] }).pools
    const named = async (name: string) => (await pools()).find((pool) => pool.name === name)
    expect((await pools()).map((pool) => pool.name)).toEqual(['sandbox', 'python-stdlib', 'bash'])
    for (const [language, code, name] of [
      ['python', 'import sys; print("pandas" in sys.modules)', 'python-stdlib'],
      ['python', 'import pandas, sys; print("matplotlib.pyplot" in sys.modules)', 'sandbox'],
      ['bash', 'echo sh', 'bash'],
    ] as const) {
      const deadline = Date.now() + 30_000
      while (((await named(name))?.warm ?? 0) < 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
      const hitsBefore = (await named(name))?.hits ?? 0
      const response = await hutch.request('POST', '/v1/execute', { body: { language, code } })
      // The standard-library one has nothing preloaded, the python one its libraries.
      expect(response.json).toMatchObject({
        status: 'ok',
        stdout: { 'python-stdlib': 'False\n', sandbox: 'True\n', bash: 'sh\n' }[name],
      })
      expect((await named(name))?.hits).toBe(hitsBefore + 1)
    }
  })

  it('serves the pool: stats, warm-up and shrink, with counters that add up', async () => {
    const warm = await hutch.request('POST', '/v1/pool/warm-up', {
      headers: bob,
      body: { count: 2 },
    })
    expect(warm.status).toBe(200)
    const stats = (warm.json as { pools: Record<string, number>[] }).pools[0] ?? {}
    expect(stats['warm']).toBe(2)
    expect(stats['created']! - stats['destroyed']!).toBe(
      stats['warm']! +
        stats['busy']! +
        stats['starting']! +
        (stats['destroying'] ?? 0) +
        (stats['checking'] ?? 0),
    )
    const shrink = await hutch.request('POST', '/v1/pool/shrink', {
      headers: bob,
      body: { count: 0 },
    })
    // Down to the pool's minimum (1 here), never below it.
    expect(shrink.json).toMatchObject({ destroyed: 1 })
    const after = await hutch.request('GET', '/v1/pool', { headers: bob })
    // The pool may start refilling to its minimum (1) at once.
    expect((after.json as { pools: { warm: number }[] }).pools[0]?.warm).toBeLessThanOrEqual(1)
  })

  it('exposes health, readiness, Prometheus metrics and the OpenAPI document', async () => {
    expect((await hutch.request('GET', '/ready')).json).toMatchObject({ status: 'ready' })
    const metrics = await hutch.request('GET', '/metrics')
    expect(metrics.text).toMatch(/hutch_executions_total\{language="python",status="ok"\} \d+/)
    expect(metrics.text).toContain('hutch_execution_duration_seconds_bucket')
    expect(metrics.text).toContain('hutch_pool_sandboxes')
    expect(metrics.text).toContain('hutch_queue_depth')
    const openapi = await hutch.request('GET', '/openapi.json')
    const document = openapi.json as { paths: Record<string, unknown> }
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/v1/execute', '/v1/files/{*}', '/v1/pool']),
    )
    expect((await fetch(`${hutch.url}/docs`)).status).toBe(200)
  })
})
