import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from '../../support/server.ts'
import { startTestServer, testServerPlacement } from '../../support/server.ts'

const alice = { 'x-user-id': 'alice', 'x-chat-id': 'lifecycle' }
/** As configured by default: one python kernel on standby (test servers start none). */
const standby = { HUTCH_SESSION_STANDBY_KERNELS: '1' }

interface Session {
  id: string
  state: 'hot' | 'warm' | 'cold'
  executionCount: number
  lost: { name: string; reason: string }[]
  transitions: { from: string | null; to: string; reason: string; at: string }[]
}

interface Cell {
  status: string
  stdout: string
  stderr: string
  executionCount: number
  restored: { names: string[]; lost: { name: string; reason: string }[] } | null
}

async function create(hutch: TestServer, body: Record<string, unknown>): Promise<Session> {
  const response = await hutch.request('POST', '/v1/sessions', { headers: alice, body })
  expect(response.status, response.text).toBe(201)
  return response.json as Session
}

async function get(hutch: TestServer, id: string): Promise<Session> {
  const response = await hutch.request('GET', `/v1/sessions/${id}`, { headers: alice })
  expect(response.status, response.text).toBe(200)
  return response.json as Session
}

async function cell(hutch: TestServer, id: string, code: string): Promise<Cell> {
  const response = await hutch.request('POST', `/v1/sessions/${id}/execute`, {
    headers: alice,
    body: { code },
  })
  expect(response.status, response.text).toBe(200)
  return response.json as Cell
}

/** Polls the session until it is in `state`; generous, as saves and restores take real time. */
async function waitForState(
  hutch: TestServer,
  id: string,
  state: Session['state'],
  timeoutMs = 30_000,
): Promise<Session> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const session = await get(hutch, id)
    if (session.state === state || Date.now() > deadline) return session
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const setUp = [
  'import pandas as pd',
  'df = pd.DataFrame({"n": range(10_000), "k": ["even", "odd"] * 5_000})',
  'def double(v):',
  '    return v * 2',
  'gen = (i for i in range(3))',
  'fh = open("notes.txt", "w")',
  'fh.write("kept on disk")',
  'fh.flush()',
].join('\n')

describe('session lifecycle', () => {
  let hutch: TestServer

  beforeAll(async () => {
    hutch = await startTestServer({ env: standby })
  })
  afterAll(async () => {
    await hutch.stop()
  })

  it('goes HOT -> WARM -> COLD -> HOT keeping a DataFrame and a function, reporting what it lost', async () => {
    const session = await create(hutch, {
      language: 'python',
      warmAfterMs: 500,
      coldAfterMs: 4_000,
    })
    const made = await cell(hutch, session.id, setUp)
    expect(made.status, made.stderr).toBe('ok')

    const warm = await waitForState(hutch, session.id, 'warm')
    expect(warm.state).toBe('warm')
    expect(warm.transitions.at(-1)).toMatchObject({
      from: 'hot',
      to: 'warm',
      reason: 'idle for 500 ms',
    })

    const cold = await waitForState(hutch, session.id, 'cold')
    expect(cold.state).toBe('cold')
    expect(cold.transitions.at(-1)).toMatchObject({
      from: 'warm',
      to: 'cold',
      reason: 'idle for 4000 ms',
    })
    expect(cold.lost.map((lost) => lost.name)).toEqual(expect.arrayContaining(['gen', 'fh']))
    // The saved state is not among the namespace's files: only what the cell wrote is.
    const listed = await hutch.request('GET', '/v1/files', { headers: alice })
    expect((listed.json as { files: { path: string }[] }).files.map((file) => file.path)).toEqual([
      'notes.txt',
    ])

    const back = await cell(
      hutch,
      session.id,
      'print(len(df), df["n"].sum(), double(21), open("notes.txt").read())',
    )
    expect(back.status, back.stderr).toBe('ok')
    expect(back.stdout).toBe('10000 49995000 42 kept on disk\n')
    expect(back.restored?.names).toEqual(expect.arrayContaining(['df', 'double', 'pd']))
    expect(back.restored?.lost.map((lost) => lost.name)).toEqual(
      expect.arrayContaining(['gen', 'fh']),
    )
    expect(back.executionCount).toBe(2)

    const hot = await get(hutch, session.id)
    expect(hot.state).toBe('hot')
    expect(hot.transitions.map(({ from, to }) => `${from}->${to}`)).toEqual([
      'null->hot',
      'hot->warm',
      'warm->cold',
      'cold->hot',
    ])
    // Only the first cell after the restore reports it.
    expect((await cell(hutch, session.id, 'x = 1')).restored).toBeNull()
  })

  it('restarts idle timers when a cell ends', async () => {
    const session = await create(hutch, {
      language: 'python',
      warmAfterMs: 1_500,
      coldAfterMs: 60_000,
    })
    for (let index = 0; index < 4; index += 1) {
      await cell(hutch, session.id, 'import time\ntime.sleep(0.5)')
    }
    // Over 2 s since creation, yet never 1.5 s idle: still HOT.
    expect((await get(hutch, session.id)).state).toBe('hot')
    expect((await waitForState(hutch, session.id, 'warm')).state).toBe('warm')
  })
})

describe('session caps under load', () => {
  let hutch: TestServer

  beforeAll(async () => {
    hutch = await startTestServer({
      flags: ['--max-hot-sessions', '1', '--max-warm-sessions', '1'],
      env: standby,
    })
  })
  afterAll(async () => {
    await hutch.stop()
  })

  it('keeps at most one HOT and one WARM session; the rest are COLD and still restore', async () => {
    const sessions = await Promise.all(
      Array.from({ length: 4 }, () =>
        create(hutch, { language: 'python', warmAfterMs: 600_000, coldAfterMs: 600_000 }),
      ),
    )
    const cells = await Promise.all(
      sessions.map((session, index) => cell(hutch, session.id, `mine = ${index}`)),
    )
    for (const done of cells) expect(done.status, done.stderr).toBe('ok')

    const deadline = Date.now() + 30_000
    let states: Session[] = []
    for (;;) {
      states = await Promise.all(sessions.map((session) => get(hutch, session.id)))
      const count = (state: string) => states.filter((one) => one.state === state).length
      if ((count('hot') <= 1 && count('warm') <= 1) || Date.now() > deadline) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    const byState = (state: string) => states.filter((one) => one.state === state)
    expect(byState('hot').length).toBeLessThanOrEqual(1)
    expect(byState('warm').length).toBeLessThanOrEqual(1)
    expect(byState('cold').length).toBeGreaterThanOrEqual(2)
    for (const one of byState('cold')) {
      expect(one.transitions.map((transition) => transition.reason).join('\n')).toMatch(
        /more than 1 (HOT|WARM) sessions; least recently used/,
      )
    }

    // Every session, whatever its state, still has its own variable.
    for (const [index, session] of sessions.entries()) {
      const back = await cell(hutch, session.id, 'print(mine)')
      expect(back.stdout).toBe(`${index}\n`)
    }
    const after = await Promise.all(sessions.map((session) => get(hutch, session.id)))
    expect(after.filter((one) => one.state === 'hot').length).toBeLessThanOrEqual(2)
  })
})

describe('server restart', () => {
  it('leaves sessions COLD with a reason, and restorable', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-server-'))
    const first = await startTestServer({ dataDir, env: standby })
    let id: string
    try {
      const session = await create(first, { language: 'python' })
      id = session.id
      expect(
        (await cell(first, id, 'import pandas as pd\nframe = pd.DataFrame({"v": [1, 2, 3]})'))
          .status,
      ).toBe('ok')
    } finally {
      await first.server.shutdown()
    }

    const second = await startTestServer({ dataDir, env: standby })
    try {
      const cold = await get(second, id)
      expect(cold.state).toBe('cold')
      expect(cold.transitions.at(-1)).toMatchObject({ from: 'hot', to: 'cold' })
      const back = await cell(second, id, 'print(frame["v"].sum())')
      expect(back.stdout).toBe('6\n')
      expect(back.restored?.names).toContain('frame')
      expect((await get(second, id)).state).toBe('hot')
    } finally {
      await second.stop()
    }
  })
})

describe('server killed', () => {
  it('leaves sessions COLD with their last save: what was never saved is reported lost', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hutch-server-'))
    fs.chmodSync(dataDir, 0o711)
    const root = path.resolve(import.meta.dirname, '../../..')
    const child = spawn(
      process.execPath,
      [
        '--conditions=hutch-source',
        '--input-type=module',
        '-e',
        `import pino from 'pino'
         import { loadConfig, startServer } from '@hutch/server'
         const config = loadConfig({ env: { HUTCH_POOL_MIN_WARM: '0' }, argv: ['--port', '0', '--data-dir', ${JSON.stringify(dataDir)}], cwd: ${JSON.stringify(dataDir)} })
         const server = await startServer(config, { logger: pino({ level: 'silent' }), ...${JSON.stringify(testServerPlacement(dataDir))} })
         console.log(server.url)`,
      ],
      { cwd: path.join(root, 'packages/server'), stdio: ['ignore', 'pipe', 'inherit'] },
    )
    const url = await new Promise<string>((resolve, reject) => {
      child.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString().trim()))
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)))
    })
    const doomed = {
      url,
      dataDir,
      request: async (method: string, urlPath: string, options: { body?: unknown } = {}) => {
        const response = await fetch(`${url}${urlPath}`, {
          method,
          headers: { ...alice, 'content-type': 'application/json' },
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
        })
        const text = await response.text()
        return {
          status: response.status,
          headers: response.headers,
          json: JSON.parse(text) as unknown,
          text,
        }
      },
    } as unknown as TestServer

    // Never saved: only in the killed server's memory.
    const unsaved = await create(doomed, { language: 'python' })
    await cell(doomed, unsaved.id, 'x = 5')
    // Saved once (COLD), then changed again in memory.
    const saved = await create(doomed, { language: 'python', warmAfterMs: 100, coldAfterMs: 300 })
    await cell(doomed, saved.id, 'y = 7')
    expect((await waitForState(doomed, saved.id, 'cold')).state).toBe('cold')
    await cell(doomed, saved.id, 'z = 1')
    child.kill('SIGKILL')
    await new Promise((resolve) => child.once('exit', resolve))

    const restarted = await startTestServer({ dataDir, env: standby })
    try {
      expect(restarted.server.reconciled).toMatchObject({ sessionsCold: 2 })
      for (const id of [unsaved.id, saved.id]) {
        const session = await get(restarted, id)
        expect(session.state).toBe('cold')
        expect(session.transitions.at(-1)).toMatchObject({ to: 'cold', reason: 'server restarted' })
      }
      const fresh = await cell(restarted, unsaved.id, 'print("x" in globals())')
      expect(fresh.stdout).toBe('False\n')
      expect(fresh.restored?.lost).toEqual([
        { name: '*', reason: expect.stringContaining('never saved') },
      ])
      const last = await cell(restarted, saved.id, 'print(y, "z" in globals())')
      expect(last.stdout).toBe('7 False\n')
      expect(last.restored?.names).toContain('y')
    } finally {
      await restarted.stop()
    }
  })
})
