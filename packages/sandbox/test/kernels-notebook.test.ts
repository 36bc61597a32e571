import fs from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import { waitUntil } from '../../../test/support/processes.ts'
import { closeTestSandboxes, testSandbox } from '../../../test/support/sandbox.ts'

/** Notebooks run top to bottom through nbclient in a real sandbox. */
const sandbox = () => testSandbox('bubblewrap')

afterAll(closeTestSandboxes)

function notebook(...sources: string[]): string {
  return JSON.stringify({
    nbformat: 4,
    nbformat_minor: 5,
    metadata: {},
    cells: [
      { cell_type: 'markdown', metadata: {}, source: '# A notebook' },
      ...sources.map((source) => ({
        cell_type: 'code',
        metadata: {},
        source,
        outputs: [],
        execution_count: null,
      })),
    ],
  })
}

describe('notebooks', () => {
  it('runs every cell, returns the executed notebook and each cell’s outputs', async () => {
    const files = new Map<string, Buffer>()
    const result = await (
      await sandbox()
    ).run({
      language: 'python',
      path: 'analysis.ipynb',
      code: notebook(
        'x = 21\nprint("hello")',
        'import pandas as pd\npd.DataFrame({"n": [x, x * 2]})',
        'import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.show()',
      ),
      onOutputFile: async (file) => {
        const chunks: Buffer[] = []
        for await (const chunk of file.content) chunks.push(chunk as Buffer)
        files.set(file.path, Buffer.concat(chunks))
      },
    })
    expect(result.status).toBe('ok')
    expect(result.stdout).toBe('hello\n')
    expect(result.outputFiles.map((file) => file.path)).toEqual(['analysis.ipynb'])
    const executed = JSON.parse(files.get('analysis.ipynb')?.toString('utf8') ?? '{}') as {
      cells: { execution_count?: number | null }[]
    }
    expect(executed.cells.map((cell) => cell.execution_count ?? null)).toEqual([null, 1, 2, 3])
    expect(result.cells?.map((cell) => [cell.index, cell.status])).toEqual([
      [1, 'ok'],
      [2, 'ok'],
      [3, 'ok'],
    ])
    expect(result.cells?.[1]?.results[0]?.['text/html']).toContain('<table')
    const png = Buffer.from(String(result.cells?.[2]?.results[0]?.['image/png']), 'base64')
    expect(png.subarray(1, 4).toString('ascii')).toBe('PNG')
  })

  it('stops at the first error, parses it, and marks the rest not run', async () => {
    const result = await (
      await sandbox()
    ).run({ language: 'python', code: notebook('a = 1', 'a / 0', 'print("never")') })
    expect(result.status).toBe('error')
    expect(result.error).toMatchObject({ name: 'ZeroDivisionError', line: 1 })
    expect(result.cells?.map((cell) => cell.status)).toEqual(['ok', 'error', 'not_run'])
    expect(result.stdout).not.toContain('never')
    expect(result.outputFiles.map((file) => file.path)).toEqual(['notebook.ipynb'])
  })

  it('takes a fresh sandbox over a prepared one, and releases the prepared one', async () => {
    const slot = await (await sandbox()).prepare()
    const result = await (
      await sandbox()
    ).run({ language: 'python', code: notebook('print(6 * 7)'), slot })
    expect(result.stdout).toBe('42\n')
    expect(await waitUntil(() => !fs.existsSync(slot.workdir), 10_000)).toBe(true)
  })

  it('has a loopback network only', async () => {
    const result = await (
      await sandbox()
    ).run({
      language: 'python',
      code: notebook(
        'import socket\nprint(sorted(socket.if_nameindex()))',
        'try:\n    socket.create_connection(("1.1.1.1", 53), timeout=2)\n    print("reached")\nexcept OSError as error:\n    print("blocked")',
      ),
    })
    expect(result.stdout).toBe("[(1, 'lo')]\nblocked\n")
  })
})
