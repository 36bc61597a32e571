/**
 * Session latencies over HTTP (POST /v1/sessions/:id/execute): a trivial cell in a HOT session,
 * the same cell on a WARM (frozen) session, and on a COLD session holding a 10k-row DataFrame
 * (restored from storage). The baseline is a trivial cell through the library's kernel
 * in-process (no HTTP, no records). `thaw/restore` is the server's own `timings.syncInMs`.
 * Creation and COLD restore are measured twice: taking a standby kernel (each sample waits,
 * untimed, for the standby to be ready again), and on a second server without a standby
 * (`HUTCH_SESSION_STANDBY_KERNELS=0`), where each starts a kernel and re-runs the imports.
 * HOT and WARM are measured once the standby has replaced the kernel their session took.
 *
 *   ./scripts/bench sessions [runs]
 */
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Sandbox } from '@hutch/sandbox'
import { startTestServer } from '../test/support/server.ts'
import type { TestServer } from '../test/support/server.ts'

const runs = Number(process.argv[2] ?? 100)
const coldRuns = Math.max(5, Math.round(runs / 5))
const root = path.resolve(import.meta.dirname, '..')

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN
}

interface Cell {
  status: string
  stdout: string
  timings: { syncInMs: number }
  restored: unknown
}

async function createSession(hutch: TestServer, body: Record<string, unknown>): Promise<string> {
  const response = await hutch.request('POST', '/v1/sessions', {
    body: { language: 'python', ...body },
  })
  if (response.status !== 201) throw new Error(`create failed: ${response.text}`)
  return (response.json as { id: string }).id
}

async function cell(hutch: TestServer, id: string, code: string): Promise<Cell> {
  const response = await fetch(`${hutch.url}/v1/sessions/${id}/execute`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code }),
  })
  const result = (await response.json()) as Cell
  if (result.status !== 'ok') throw new Error(`cell failed: ${JSON.stringify(result)}`)
  return result
}

async function waitForState(hutch: TestServer, id: string, state: string): Promise<void> {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const response = await hutch.request('GET', `/v1/sessions/${id}`)
    if ((response.json as { state?: string }).state === state) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`session ${id} never became ${state}`)
}

/** Latencies of `runs` trivial cells, each after `before` (which is not timed). */
async function measure(
  hutch: TestServer,
  id: string,
  count: number,
  before: () => Promise<void>,
): Promise<{ samples: number[]; syncIn: number[] }> {
  const samples: number[] = []
  const syncIn: number[] = []
  for (let index = 0; index < count; index += 1) {
    await before()
    const started = performance.now()
    const result = await cell(hutch, id, 'x = 1')
    samples.push(performance.now() - started)
    syncIn.push(result.timings.syncInMs)
  }
  return { samples, syncIn }
}

const rows: string[] = []
const row = (
  label: string,
  count: number,
  result: { samples: number[]; syncIn: number[] },
  target: string,
) => {
  const median = (values: number[]) => percentile(values, 50).toFixed(1)
  rows.push(
    `| ${label} | ${count} | ${median(result.samples)} | ${percentile(result.samples, 99).toFixed(1)} | ${result.syncIn.length === 0 ? '-' : median(result.syncIn)} | ${target} |`,
  )
}

// Baseline: the kernel in-process.
const sandbox = await Sandbox.create()
const kernel = await sandbox.openKernel({ language: 'python' })
await kernel.execute('x = 1')
const library: number[] = []
for (let index = 0; index < runs; index += 1) {
  const started = performance.now()
  await kernel.execute('x = 1')
  library.push(performance.now() - started)
}
// As the server calls it: new and changed files of each cell collected (none here).
const collecting: number[] = []
for (let index = 0; index < runs; index += 1) {
  const started = performance.now()
  await kernel.execute('x = 1', { onOutputFile: () => Promise.resolve() })
  collecting.push(performance.now() - started)
}
await kernel.close()
await sandbox.close()
row('library kernel.execute, in-process (baseline)', runs, { samples: library, syncIn: [] }, '-')
row(
  'library kernel.execute collecting output files, in-process',
  runs,
  { samples: collecting, syncIn: [] },
  '-',
)

const serverEnv = {
  HUTCH_RATE_LIMIT_PER_MINUTE: '0',
  HUTCH_POOL_MIN_WARM: '0',
  HUTCH_POOL_MAX_WARM: '0',
}

/** Waits until the server's standby has a kernel ready and none starting. */
async function standbyReady(hutch: TestServer): Promise<void> {
  const deadline = Date.now() + 60_000
  for (;;) {
    const { standby } = hutch.server.sessions.stats()
    if (standby.ready > 0 && standby.starting === 0) return
    if (Date.now() > deadline)
      throw new Error(`the standby never refilled: ${JSON.stringify(standby)}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Creation and COLD restore latencies; `before` runs (untimed) before each sample. */
async function createAndRestore(
  hutch: TestServer,
  label: string,
  before: () => Promise<void>,
): Promise<void> {
  const creates: number[] = []
  for (let index = 0; index < coldRuns; index += 1) {
    await before()
    const started = performance.now()
    const id = await createSession(hutch, {})
    creates.push(performance.now() - started)
    await hutch.request('DELETE', `/v1/sessions/${id}`)
  }
  row(`create: POST /v1/sessions, ${label}`, coldRuns, { samples: creates, syncIn: [] }, '-')

  const cold = await createSession(hutch, { warmAfterMs: 20, coldAfterMs: 100 })
  await cell(
    hutch,
    cold,
    'import pandas as pd\ndf = pd.DataFrame({"n": range(10_000), "s": [str(i) for i in range(10_000)]})',
  )
  row(
    `COLD: trivial cell restoring a 10k-row DataFrame, ${label}`,
    coldRuns,
    await measure(hutch, cold, coldRuns, async () => {
      await waitForState(hutch, cold, 'cold')
      await before()
    }),
    '<= 500 ms',
  )
  await hutch.request('DELETE', `/v1/sessions/${cold}`)
}

const hutch = await startTestServer({ env: { ...serverEnv, HUTCH_SESSION_STANDBY_KERNELS: '1' } })
try {
  const hot = await createSession(hutch, { warmAfterMs: 600_000, coldAfterMs: 600_000 })
  // Untimed: the server's path compiled (JIT) first, as on a server in use.
  for (let index = 0; index < 50; index += 1) await cell(hutch, hot, 'x = 1')
  // The creation took the standby kernel: its replacement (imports, ~1 s of CPU) starts first.
  await standbyReady(hutch)
  row(
    'HOT: trivial cell over HTTP',
    runs,
    await measure(hutch, hot, runs, async () => {}),
    '<= 3 ms',
  )

  const warm = await createSession(hutch, { warmAfterMs: 20, coldAfterMs: 600_000 })
  await cell(hutch, warm, 'x = 1')
  await standbyReady(hutch)
  row(
    'WARM: trivial cell on a frozen session (resume)',
    runs,
    await measure(hutch, warm, runs, () => waitForState(hutch, warm, 'warm')),
    '<= 10 ms',
  )

  await createAndRestore(hutch, 'taking a standby kernel', () => standbyReady(hutch))
} finally {
  await hutch.stop()
}

const bare = await startTestServer({
  env: { ...serverEnv, HUTCH_SESSION_STANDBY_KERNELS: '0' },
})
try {
  await createAndRestore(bare, 'no standby: a fresh kernel', async () => {})
} finally {
  await bare.stop()
}

const table = [
  `Session cells over HTTP, one at a time. ${fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*: (.*)/)?.[1] ?? ''}, ${os.availableParallelism()} CPUs, Node ${process.version}. Each WARM and COLD sample waits (untimed) for the session to be frozen or saved first.`,
  '',
  '| path | runs | median ms | p99 ms | server thaw/restore median ms | target |',
  '| --- | ---: | ---: | ---: | ---: | --- |',
  ...rows,
].join('\n')
fs.mkdirSync(path.join(root, 'bench/results'), { recursive: true })
fs.writeFileSync(path.join(root, 'bench/results/sessions.md'), `${table}\n`)
process.stdout.write(`${table}\n`)
