import { crc32, inflateSync } from 'node:zlib'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from '../../support/server.ts'
import { startTestServer } from '../../support/server.ts'

const alice = { 'x-user-id': 'alice', 'x-chat-id': 'analysis' }
const mallory = { 'x-user-id': 'mallory', 'x-chat-id': 'analysis' }
/** As configured by default: one python kernel on standby (test servers start none). */
const standby = { HUTCH_SESSION_STANDBY_KERNELS: '1' }

interface Cell {
  status: string
  stdout: string
  stderr: string
  results: Record<string, unknown>[]
  error: { name: string; value: string } | null
  reason: string | null
  executionCount: number
  outputFiles: { path: string; mediaType: string; size: number; url: string }[]
}

/**
 * Width and height of a PNG, after checking every chunk's CRC and inflating its image data to
 * exactly the size its header promises: the bytes decode as a PNG, not merely start like one.
 */
function decodePng(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]))
  let offset = 8
  let header: { width: number; height: number; bitDepth: number; colorType: number } | undefined
  const data: Buffer[] = []
  for (;;) {
    const length = bytes.readUInt32BE(offset)
    const type = bytes.toString('latin1', offset + 4, offset + 8)
    const body = bytes.subarray(offset + 8, offset + 8 + length)
    expect(bytes.readUInt32BE(offset + 8 + length)).toBe(
      crc32(bytes.subarray(offset + 4, offset + 8 + length)),
    )
    if (type === 'IHDR') {
      header = {
        width: body.readUInt32BE(0),
        height: body.readUInt32BE(4),
        bitDepth: body[8] ?? 0,
        colorType: body[9] ?? 0,
      }
    }
    if (type === 'IDAT') data.push(body)
    offset += 12 + length
    if (type === 'IEND') break
  }
  if (header === undefined) throw new Error('no IHDR chunk')
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[header.colorType] ?? 0
  const rowBytes = 1 + Math.ceil((header.width * channels * header.bitDepth) / 8)
  expect(inflateSync(Buffer.concat(data)).length).toBe(rowBytes * header.height)
  return { width: header.width, height: header.height }
}

describe('sessions over HTTP', () => {
  let hutch: TestServer

  beforeAll(async () => {
    hutch = await startTestServer({ env: standby })
  })
  afterAll(async () => {
    await hutch.stop()
  })

  async function createSession(
    body: Record<string, unknown>,
    headers = alice,
  ): Promise<{ id: string; state: string }> {
    const response = await hutch.request('POST', '/v1/sessions', { headers, body })
    expect(response.status, response.text).toBe(201)
    return response.json as { id: string; state: string }
  }

  /** Waits until the server's standby has a kernel ready and none starting. */
  async function standbyReady(): Promise<void> {
    const deadline = Date.now() + 60_000
    for (;;) {
      const { standby: kernels } = hutch.server.sessions.stats()
      if (kernels.ready === 1 && kernels.starting === 0) return
      if (Date.now() > deadline) throw new Error(`no standby kernel: ${JSON.stringify(kernels)}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  async function cell(id: string, code: string, timeoutMs?: number): Promise<Cell> {
    const response = await hutch.request('POST', `/v1/sessions/${id}/execute`, {
      headers: alice,
      body: { code, ...(timeoutMs === undefined ? {} : { timeoutMs }) },
    })
    expect(response.status, response.text).toBe(200)
    return response.json as Cell
  }

  it('creates a HOT session with the wire names, and keeps variables across cells', async () => {
    const response = await hutch.request('POST', '/v1/sessions', {
      headers: alice,
      body: { language: 'python', timeoutMs: 30_000, limits: { memoryBytes: 512 * 1024 ** 2 } },
    })
    expect(response.status).toBe(201)
    expect(response.json).toMatchObject({
      id: expect.any(String),
      language: 'python',
      state: 'hot',
      createdAt: expect.any(String),
      lastActiveAt: expect.any(String),
      transitions: [{ from: null, to: 'hot', reason: 'created', at: expect.any(String) }],
    })
    const { id } = response.json as { id: string }

    const first = await cell(id, 'x = 41\ndef bump(v):\n    return v + 1')
    expect(first).toMatchObject({ status: 'ok', executionCount: 1, error: null })
    const second = await cell(id, 'print(bump(x))\nbump(x) * 2')
    expect(second).toMatchObject({ status: 'ok', stdout: '42\n', executionCount: 2 })
    expect(second.results.at(-1)).toMatchObject({ 'text/plain': '84' })

    const listed = await hutch.request('GET', '/v1/sessions', { headers: alice })
    expect((listed.json as { items: { id: string }[] }).items.map((item) => item.id)).toContain(id)
    const got = await hutch.request('GET', `/v1/sessions/${id}`, { headers: alice })
    expect(got.json).toMatchObject({ id, state: 'hot', executionCount: 2 })
  })

  it('gives each new session a standby kernel of its own, libraries imported', async () => {
    await standbyReady()
    const taken = hutch.server.sessions.stats().standby.taken
    const first = await createSession({ language: 'python' })
    expect(hutch.server.sessions.stats().standby.taken).toBe(taken + 1)
    const mine = await cell(
      first.id,
      "import sys\nsys.hutch_owner = 'alice'\nopen('mine.txt', 'w').write('alice')\nprint('pandas' in sys.modules, 'pandas' in globals())",
    )
    expect(mine.stdout).toBe('True False\n')

    // Another tenant's new session: a kernel of its own, nothing of Alice's in it.
    const bob = { 'x-user-id': 'bob', 'x-chat-id': 'analysis' }
    await standbyReady()
    const other = await createSession({ language: 'python' }, bob)
    expect(hutch.server.sessions.stats().standby.taken).toBe(taken + 2)
    const response = await hutch.request('POST', `/v1/sessions/${other.id}/execute`, {
      headers: bob,
      body: {
        code: "import os, sys\nprint('pandas' in sys.modules, hasattr(sys, 'hutch_owner'), os.listdir('.'))",
      },
    })
    expect((response.json as Cell).stdout).toBe('True False []\n')
  })

  it('returns a figure as a PNG that decodes, and a DataFrame as HTML', async () => {
    const { id } = await createSession({ language: 'python' })
    const plotted = await cell(
      id,
      [
        'import matplotlib.pyplot as plt',
        'fig, ax = plt.subplots(figsize=(4, 3), dpi=50)',
        'ax.plot([1, 2, 3], [3, 1, 2])',
        'plt.show()',
      ].join('\n'),
    )
    expect(plotted.status, plotted.stderr).toBe('ok')
    const png = plotted.results.find((bundle) => typeof bundle['image/png'] === 'string')
    expect(png).toBeDefined()
    // 4x3 inches at 50 dpi, cropped to the drawing as Jupyter does (bbox_inches='tight').
    const { width, height } = decodePng(Buffer.from(String(png?.['image/png']), 'base64'))
    expect(width).toBeGreaterThan(100)
    expect(width).toBeLessThanOrEqual(200)
    expect(height).toBeGreaterThan(75)
    expect(height).toBeLessThanOrEqual(150)

    const table = await cell(
      id,
      'import pandas as pd\ndf = pd.DataFrame({"city": ["Oslo", "Lima"], "temp": [3, 19]})\ndf',
    )
    expect(table.status, table.stderr).toBe('ok')
    const shown = table.results.at(-1) ?? {}
    expect(String(shown['text/html'])).toMatch(/<table[\s\S]*Oslo[\s\S]*Lima[\s\S]*<\/table>/)
    expect(String(shown['text/plain'])).toContain('Oslo')
  })

  it('interrupts a cell past its timeout; the next cell still sees earlier variables', async () => {
    const { id } = await createSession({ language: 'python' })
    await cell(id, 'kept = "still here"')
    const slow = await cell(id, 'import time\nwhile True:\n    time.sleep(0.05)', 1_000)
    expect(slow.status).toBe('timeout')
    const after = await cell(id, 'print(kept)')
    expect(after).toMatchObject({ status: 'ok', stdout: 'still here\n' })
  })

  it('interrupts a running cell on request, and restarts the interpreter', async () => {
    const { id } = await createSession({ language: 'python' })
    await cell(id, 'kept = 1')
    const running = cell(id, 'import time\ntime.sleep(60)')
    let settled = false
    void running.finally(() => {
      settled = true
    })
    // Interrupts until the cell ends: one sent before the cell started would find nothing to stop.
    while (!settled) {
      await new Promise((resolve) => setTimeout(resolve, 500))
      const interrupted = await hutch.request('POST', `/v1/sessions/${id}/interrupt`, {
        headers: alice,
      })
      expect(interrupted.status).toBe(200)
    }
    const stopped = await running
    expect(stopped.status).not.toBe('ok')
    expect((await cell(id, 'print(kept)')).stdout).toBe('1\n')

    const restarted = await hutch.request('POST', `/v1/sessions/${id}/restart`, { headers: alice })
    expect(restarted.status).toBe(200)
    expect(restarted.json).toMatchObject({ state: 'hot', executionCount: 0 })
    expect(
      (restarted.json as { transitions: { reason: string }[] }).transitions.at(-1),
    ).toMatchObject({ reason: 'restarted by the client' })
    const gone = await cell(id, 'print(kept)')
    expect(gone.status).toBe('error')
    expect(gone.error?.name).toBe('NameError')
  })

  it('keeps cwd, variables and functions in bash, and the context in javascript', async () => {
    const shell = await createSession({ language: 'bash' })
    await cell(shell.id, 'mkdir -p sub && cd sub && greeting=hello && shout() { echo "$1!"; }')
    expect((await cell(shell.id, 'pwd; shout "$greeting"')).stdout).toMatch(/\/sub\nhello!\n$/)

    const script = await createSession({ language: 'javascript' })
    await cell(script.id, 'globalThis.total = 40; function add(a) { return total + a }')
    const js = await cell(script.id, 'console.log(add(2))')
    expect(js).toMatchObject({ status: 'ok', stdout: '42\n' })
  })

  it('stores output files of a cell in the namespace and lists them with urls', async () => {
    const { id } = await createSession({ language: 'python' })
    const made = await cell(id, 'open("report.csv", "w").write("a,b\\n1,2\\n")')
    expect(made.outputFiles).toEqual([
      { path: 'report.csv', mediaType: 'text/csv', size: 8, url: '/v1/files/report.csv' },
    ])
    const file = await hutch.request('GET', '/v1/files/report.csv', { headers: alice })
    expect(file.text).toBe('a,b\n1,2\n')
  })

  it('streams a cell as server-sent events', async () => {
    const { id } = await createSession({ language: 'python' })
    const response = await fetch(`${hutch.url}/v1/sessions/${id}/execute`, {
      method: 'POST',
      headers: { ...alice, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({
        code: 'print("one", flush=True)\nfrom IPython.display import display\ndisplay({"a": 1})\n7',
      }),
    })
    expect(response.headers.get('content-type')).toContain('text/event-stream')
    const text = await response.text()
    const events = [...text.matchAll(/^event: (\w+)$/gm)].map((match) => match[1])
    expect(events[0]).toBe('start')
    expect(events).toContain('stdout')
    expect(events).toContain('display')
    expect(events.slice(-2)).toEqual(['result', 'end'])
    const result = /event: result\ndata: (.*)\n/.exec(text)?.[1] ?? '{}'
    expect(JSON.parse(result)).toMatchObject({ status: 'ok', stdout: 'one\n', executionCount: 1 })
  })

  it('keeps sessions within their namespace: another user gets 404', async () => {
    const { id } = await createSession({ language: 'python' })
    await cell(id, 'secret = "alice only"')
    for (const [method, path, body] of [
      ['GET', `/v1/sessions/${id}`, undefined],
      ['POST', `/v1/sessions/${id}/execute`, { code: 'print(secret)' }],
      ['POST', `/v1/sessions/${id}/interrupt`, undefined],
      ['POST', `/v1/sessions/${id}/restart`, undefined],
      ['DELETE', `/v1/sessions/${id}`, undefined],
    ] as const) {
      const response = await hutch.request(method, path, {
        headers: mallory,
        ...(body === undefined ? {} : { body }),
      })
      expect(response.status, `${method} ${path}`).toBe(404)
      expect(response.json).toMatchObject({ error: { code: 'not_found' } })
    }
    const otherChat = await hutch.request('GET', `/v1/sessions/${id}`, {
      headers: { ...alice, 'x-chat-id': 'another' },
    })
    expect(otherChat.status).toBe(404)
    const listed = await hutch.request('GET', '/v1/sessions', { headers: mallory })
    expect(listed.json).toMatchObject({ items: [] })
    expect((await cell(id, 'print(secret)')).stdout).toBe('alice only\n')
  })

  it('deletes a session: it is gone for every later call', async () => {
    const { id } = await createSession({ language: 'python' })
    const deleted = await hutch.request('DELETE', `/v1/sessions/${id}`, { headers: alice })
    expect(deleted.status).toBe(204)
    const got = await hutch.request('GET', `/v1/sessions/${id}`, { headers: alice })
    expect(got.status).toBe(404)
    const run = await hutch.request('POST', `/v1/sessions/${id}/execute`, {
      headers: alice,
      body: { code: '1' },
    })
    expect(run.status).toBe(404)
  })

  it('refuses languages without a kernel and unknown fields', async () => {
    const go = await hutch.request('POST', '/v1/sessions', {
      headers: alice,
      body: { language: 'go' },
    })
    expect(go.status).toBe(400)
    expect(go.json).toMatchObject({ error: { code: 'unsupported_language' } })
    const unknown = await hutch.request('POST', '/v1/sessions', {
      headers: alice,
      body: { language: 'python', idleMs: 5 },
    })
    expect(unknown.status).toBe(400)
  })
})
