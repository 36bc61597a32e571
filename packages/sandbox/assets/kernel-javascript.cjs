// hutch's JavaScript kernel driver: one `vm` context that keeps its globals across cells.
//
// Runs inside the sandbox. Commands arrive on fd 60 as a header line `<type> <id> <bytes>` and
// <bytes> of payload; events leave on fd 61 as JSON lines, each optionally followed by
// `payloadBytes` raw bytes. After each cell a sentinel goes to stdout and stderr, so that output
// of the cell's child processes is told apart from the next cell's. SIGINT stops a running cell.
'use strict'
const fs = require('node:fs')
const net = require('node:net')
const util = require('node:util')
const v8 = require('node:v8')
const vm = require('node:vm')
const { createRequire } = require('node:module')

const COMMANDS_FD = 60
const EVENTS_FD = 61
const STATE_MAGIC = 'hutch-kernel:javascript:1\n'

// A cell awaiting a promise is stopped by an interrupt; idle, an interrupt does nothing.
let stopAwait = null
process.on('SIGINT', () => stopAwait?.())
process.chdir('/work')
// An error thrown by a timer or a promise nobody awaited is reported, as the REPL does, instead
// of ending the kernel.
process.on('uncaughtException', (error) => writeAll(2, `Uncaught ${util.inspect(error)}\n`))
process.on('unhandledRejection', (reason) =>
  writeAll(2, `Unhandled rejection: ${util.inspect(reason)}\n`),
)

function send(event, payload) {
  if (payload !== undefined) event.payloadBytes = payload.length
  // A newline first ends whatever partial line a cell may have left on the pipe.
  let data = Buffer.from('\n' + JSON.stringify(event) + '\n', 'utf8')
  if (payload !== undefined) data = Buffer.concat([data, payload])
  let offset = 0
  while (offset < data.length) {
    try {
      offset += fs.writeSync(EVENTS_FD, data, offset)
    } catch (error) {
      if (error.code !== 'EAGAIN') throw error
    }
  }
}

const cellConsole = new console.Console({ stdout: process.stdout, stderr: process.stderr })
const sandbox = {
  console: cellConsole,
  process,
  require: createRequire('/work/'),
  Buffer,
  setTimeout,
  setInterval,
  setImmediate,
  clearTimeout,
  clearInterval,
  clearImmediate,
  queueMicrotask,
  structuredClone,
  URL,
  URLSearchParams,
  TextEncoder,
  TextDecoder,
  AbortController,
  AbortSignal,
  performance,
  fetch,
  display: (value) => publish(value),
}
const provided = new Set(Object.keys(sandbox))
const context = vm.createContext(sandbox, { name: 'hutch' })
const builtins = new Set(Object.getOwnPropertyNames(vm.runInContext('globalThis', context)))
let current = null
let executionCount = 0

function bundleOf(value) {
  if (value !== null && typeof value === 'object' && typeof value._repr_mime_ === 'function') {
    return value._repr_mime_()
  }
  return { 'text/plain': typeof value === 'string' ? value : util.inspect(value, { depth: 4 }) }
}

function publish(value) {
  if (current !== null) send({ type: 'display', id: current, bundle: bundleOf(value) })
}

function writeAll(fd, text) {
  try {
    fs.writeSync(fd, text)
  } catch {
    // the cell closed it
  }
}

async function runCell(id, code) {
  current = id
  executionCount++
  const event = { type: 'done', id, executionCount, ok: true }
  try {
    const script = new vm.Script(code, { filename: `cell${executionCount}.js` })
    let value = script.runInContext(context, { breakOnSigint: true, displayErrors: false })
    if (value !== null && typeof value === 'object' && typeof value.then === 'function') {
      value = await new Promise((resolve, reject) => {
        stopAwait = () => reject(new Error('Script execution interrupted.'))
        value.then(resolve, reject)
      }).finally(() => {
        stopAwait = null
      })
    }
    if (value !== undefined) event.result = bundleOf(value)
  } catch (error) {
    event.ok = false
    const isError = error !== null && typeof error === 'object' && 'stack' in error
    // The driver's own frames say nothing about the cell.
    const stack = isError
      ? String(error.stack)
          .split('\n')
          .filter((line) => !/node:vm|node:internal|kernel-javascript\.cjs/.test(line))
          .join('\n')
      : ''
    event.error = {
      name: isError ? String(error.name) : 'Error',
      value: isError ? String(error.message) : util.inspect(error),
      traceback: isError ? stack : util.inspect(error),
    }
    writeAll(2, `${event.error.traceback}\n`)
  }
  const sentinel = `\0hutch-cell-end:${id}\0`
  writeAll(1, sentinel)
  writeAll(2, sentinel)
  current = null
  send(event)
}

function snapshot(id) {
  const values = {}
  const functions = {}
  const saved = []
  const lost = []
  for (const name of Object.getOwnPropertyNames(context)) {
    if (builtins.has(name) || provided.has(name)) continue
    const value = context[name]
    if (typeof value === 'function') {
      const source = Function.prototype.toString.call(value)
      if (source.includes('[native code]'))
        lost.push({ name, reason: 'a native function cannot be saved' })
      else {
        functions[name] = source
        saved.push(name)
      }
      continue
    }
    try {
      v8.serialize(value)
      values[name] = value
      saved.push(name)
    } catch (error) {
      lost.push({ name, reason: String(error.message).slice(0, 300) })
    }
  }
  const state = Buffer.concat([Buffer.from(STATE_MAGIC), v8.serialize({ values, functions })])
  send({ type: 'snapshot', id, saved, lost }, saved.length === 0 ? Buffer.alloc(0) : state)
}

function restore(id, payload) {
  const restored = []
  const lost = []
  if (!payload.subarray(0, STATE_MAGIC.length).equals(Buffer.from(STATE_MAGIC))) {
    send({
      type: 'restored',
      id,
      restored,
      lost: [{ name: '*', reason: "the saved state is not a javascript kernel's" }],
    })
    return
  }
  const state = v8.deserialize(payload.subarray(STATE_MAGIC.length))
  for (const [name, value] of Object.entries(state.values)) {
    context[name] = value
    restored.push(name)
  }
  for (const [name, source] of Object.entries(state.functions)) {
    try {
      context[name] = vm.runInContext(`(${source})`, context)
      restored.push(name)
    } catch (error) {
      lost.push({ name, reason: String(error.message).slice(0, 300) })
    }
  }
  send({ type: 'restored', id, restored, lost })
}

let buffered = Buffer.alloc(0)
let busy = Promise.resolve()
const commands = new net.Socket({ fd: COMMANDS_FD, readable: true, writable: false })
commands.on('data', (chunk) => {
  buffered = Buffer.concat([buffered, chunk])
  for (;;) {
    const newline = buffered.indexOf(10)
    if (newline === -1) return
    const [type, id, size] = buffered.subarray(0, newline).toString('ascii').split(' ')
    const length = Number(size)
    if (buffered.length < newline + 1 + length) return
    const payload = buffered.subarray(newline + 1, newline + 1 + length)
    buffered = buffered.subarray(newline + 1 + length)
    busy = busy
      .then(async () => {
        if (type === 'execute') await runCell(id, payload.toString('utf8'))
        else if (type === 'snapshot') snapshot(id)
        else if (type === 'restore') restore(id, payload)
      })
      .catch((error) =>
        send({ type: 'failed', id, message: String(error && error.message).slice(0, 1000) }),
      )
  }
})
commands.on('end', () => process.exit(0))
send({ type: 'ready', pid: process.pid })
