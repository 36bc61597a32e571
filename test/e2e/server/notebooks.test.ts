import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { TestServer } from '../../support/server.ts'
import { startTestServer } from '../../support/server.ts'

/** `POST /v1/execute` runs a notebook top to bottom (issue 6 item 5), over real HTTP. */
const alice = { 'x-user-id': 'alice', 'x-chat-id': 'nb' }

function notebook(...sources: string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: sources.map((source) => ({
      cell_type: 'code',
      metadata: {},
      source,
      outputs: [],
      execution_count: null,
    })),
  })
}

interface NotebookAnswer {
  status: string
  stdout: string
  results: Record<string, unknown>[]
  outputFiles: { path: string; url: string }[]
  cells: { index: number; status: string; executionCount: number | null }[]
  error: { name: string } | null
}

describe('notebooks over /v1/execute', () => {
  let hutch: TestServer
  beforeAll(async () => {
    hutch = await startTestServer()
  })
  afterAll(async () => {
    await hutch.stop()
  })

  it('runs an uploaded .ipynb and stores the executed notebook back', async () => {
    const upload = await hutch.request('PUT', '/v1/files/work/analysis.ipynb', {
      headers: { ...alice, 'content-type': 'application/octet-stream' },
      raw: notebook(
        'total = sum(range(5))\nprint(total)',
        'import pandas as pd\npd.DataFrame({"n": [total]})',
      ),
    })
    expect(upload.status).toBeLessThan(300)
    const response = await hutch.request('POST', '/v1/execute', {
      headers: alice,
      body: { language: 'python', path: 'work/analysis.ipynb', files: ['work/analysis.ipynb'] },
    })
    expect(response.status).toBe(200)
    const answer = response.json as NotebookAnswer
    expect(answer.status).toBe('ok')
    expect(answer.stdout).toBe('10\n')
    expect(answer.cells.map((cell) => [cell.index, cell.status, cell.executionCount])).toEqual([
      [0, 'ok', 1],
      [1, 'ok', 2],
    ])
    expect(String(answer.results[0]?.['text/html'])).toContain('<table')
    expect(answer.outputFiles.map((file) => file.path)).toEqual(['work/analysis.ipynb'])
    const stored = await hutch.request('GET', '/v1/files/work/analysis.ipynb', { headers: alice })
    const executed = JSON.parse(stored.text) as { cells: { execution_count: number | null }[] }
    expect(executed.cells.map((cell) => cell.execution_count)).toEqual([1, 2])
  })

  it('runs a notebook given as the code, and reports its first error', async () => {
    const response = await hutch.request('POST', '/v1/execute', {
      headers: alice,
      body: { language: 'python', code: notebook('x = 1', 'x.missing', 'print("never")') },
    })
    const answer = response.json as NotebookAnswer
    expect(answer.status).toBe('error')
    expect(answer.error?.name).toBe('AttributeError')
    expect(answer.cells.map((cell) => cell.status)).toEqual(['ok', 'error', 'not_run'])
  })
})
