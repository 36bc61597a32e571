import fs from 'node:fs/promises'
import { Readable } from 'node:stream'
import type { MimeBundle, RunError } from '@hutch/protocol'
import { resolveLanguage } from '@hutch/protocol'
import { parsePythonError } from '../errors/python-traceback.ts'
import type { OutputSink } from '../files/output-files.ts'
import type { Limits } from '../policy/limits.ts'
import type { RunOptions, RunResult } from '../sandbox.ts'

/** What one code cell of an executed notebook produced. */
export interface NotebookCell {
  /** Index of the cell among all the notebook's cells (markdown included). */
  index: number
  /** Jupyter's execution count; null for a cell that did not run. */
  executionCount: number | null
  /** `not_run`: a cell after the one that failed, or past the time limit. */
  status: 'ok' | 'error' | 'not_run'
  stdout: string
  stderr: string
  /** display_data and execute_result outputs, in order. */
  results: MimeBundle[]
  error?: RunError
}

/** Where the runner is written in the workdir, beside the notebook. */
const runnerPath = '.hutch-notebook-runner.py'
/** Seconds kept back from the wall time so that the runner can write the notebook out. */
const writeBackSeconds = 3
/** Largest executed notebook read back for its cells' outputs, bytes. */
const maxNotebookBytes = 64 * 1024 * 1024

function runnerSource(): Promise<string> {
  return fs.readFile(new URL('../../assets/notebook-runner.py', import.meta.url), 'utf8')
}

/**
 * The notebook a run asks for, if it is one: a Python run whose `path` ends in `.ipynb`, or whose
 * `code` is a notebook's JSON with no path (it is then run as `notebook.ipynb`).
 */
export function notebookPath(options: RunOptions): string | undefined {
  if (resolveLanguage(String(options.language)) !== 'python') return undefined
  if (typeof options.path === 'string' && options.path.toLowerCase().endsWith('.ipynb')) {
    return options.path
  }
  if (options.path === undefined && typeof options.code === 'string') {
    const head = options.code.trimStart()
    if (head.startsWith('{') && head.includes('"cells"') && head.includes('"nbformat"')) {
      return 'notebook.ipynb'
    }
  }
  return undefined
}

/**
 * Runs a notebook top to bottom with nbclient in one sandbox with a loopback-only network (its
 * kernel talks ZeroMQ over 127.0.0.1), unless the run asked for the host's. The executed notebook
 * is an output file at its own path; `cells` holds each code cell's outputs, `stdout`, `stderr`
 * and `results` all cells' together, `error` the first cell that raised.
 */
export async function runNotebook(
  run: (options: RunOptions) => Promise<RunResult>,
  resolveLimits: (requested: RunOptions['limits']) => Limits,
  options: RunOptions,
  path: string,
): Promise<RunResult & { cells: NotebookCell[] }> {
  const limits = resolveLimits(options.limits)
  const deadlineSeconds = Math.max(1, Math.floor(limits.wallTimeMs / 1000) - writeBackSeconds)
  let executed: Buffer | undefined
  const callerSink = options.onOutputFile
  const sink: OutputSink = async (file) => {
    if (file.path !== path) {
      await callerSink?.(file)
      return
    }
    const chunks: Buffer[] = []
    for await (const chunk of file.content) chunks.push(chunk as Buffer)
    const content = Buffer.concat(chunks)
    if (content.length <= maxNotebookBytes) executed = content
    await callerSink?.({ ...file, content: Readable.from([content]) })
  }
  const files = [
    ...(options.files ?? []),
    ...(options.code === undefined ? [] : [{ path, content: options.code }]),
  ]
  // A sandbox prepared ahead was made for another network (a fork server's child cannot change
  // its own): the notebook takes a fresh one, and the prepared one is released unused.
  const { slot: prepared, ...rest } = options
  if (prepared !== undefined) void prepared.release().catch(() => {})
  // code, path and onOutputFile are all replaced below.
  const result = await run({
    ...rest,
    code: await runnerSource(),
    path: runnerPath,
    files,
    args: [path, String(deadlineSeconds)],
    network: options.network === 'host' ? 'host' : 'loopback',
    env: { ...options.env, PYDEVD_DISABLE_FILE_VALIDATION: '1' },
    onOutputFile: sink,
  })
  const cells = executed === undefined ? [] : readCells(executed)
  const failed = cells.find((cell) => cell.error !== undefined)
  const runnerError = result.stderr.trim()
  return {
    ...result,
    stdout: cells.map((cell) => cell.stdout).join(''),
    stderr: [cells.map((cell) => cell.stderr).join(''), failed === undefined ? runnerError : '']
      .filter((text) => text !== '')
      .join('\n'),
    results: cells.flatMap((cell) => cell.results),
    ...(failed?.error === undefined ? {} : { error: failed.error }),
    cells,
  }
}

interface RawOutput {
  output_type?: unknown
  name?: unknown
  text?: unknown
  data?: unknown
  ename?: unknown
  evalue?: unknown
  traceback?: unknown
}

/** The code cells of an executed notebook, with their outputs. */
export function readCells(notebook: Buffer): NotebookCell[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(notebook.toString('utf8'))
  } catch {
    return []
  }
  const cells = (parsed as { cells?: unknown }).cells
  if (!Array.isArray(cells)) return []
  const found: NotebookCell[] = []
  cells.forEach((value: unknown, index) => {
    const cell = value as {
      cell_type?: unknown
      execution_count?: unknown
      outputs?: unknown
      source?: unknown
    }
    if (cell.cell_type !== 'code') return
    const outputs = Array.isArray(cell.outputs) ? (cell.outputs as RawOutput[]) : []
    const executionCount = typeof cell.execution_count === 'number' ? cell.execution_count : null
    const entry: NotebookCell = {
      index,
      executionCount,
      status: executionCount === null ? 'not_run' : 'ok',
      stdout: '',
      stderr: '',
      results: [],
    }
    for (const output of outputs) {
      if (output.output_type === 'stream') {
        const text = joinText(output.text)
        if (output.name === 'stderr') entry.stderr += text
        else entry.stdout += text
      } else if (
        (output.output_type === 'display_data' || output.output_type === 'execute_result') &&
        typeof output.data === 'object' &&
        output.data !== null
      ) {
        const bundle: MimeBundle = {}
        for (const [mime, data] of Object.entries(output.data as Record<string, unknown>)) {
          bundle[mime] = Array.isArray(data) && !mime.endsWith('json') ? joinText(data) : data
        }
        entry.results.push(bundle)
      } else if (output.output_type === 'error') {
        entry.status = 'error'
        const traceback = Array.isArray(output.traceback)
          ? output.traceback.map(String).join('\n')
          : ''
        const raw: RunError = {
          name: typeof output.ename === 'string' ? output.ename : 'Error',
          value: typeof output.evalue === 'string' ? output.evalue : '',
          traceback: stripAnsi(traceback),
        }
        entry.error = parsePythonError(traceback, { code: joinText(cell.source) }) ?? raw
        entry.stderr += `${stripAnsi(traceback)}\n`
      }
    }
    found.push(entry)
  })
  return found
}

function joinText(value: unknown): string {
  if (typeof value === 'string') return value
  if (Array.isArray(value)) return value.map(String).join('')
  return ''
}

function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\u001b\[[0-9;]*[A-Za-z]/g, '')
}
