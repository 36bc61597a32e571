/**
 * Baseline servers for bench/fast-path.bench.ts: what a home-made agent sandbox does, one process
 * per request, over the same kind of HTTP exchange as hutch's.
 *
 *   node bench/baselines/spawn-server.ts naive|bwrap|runsc
 *
 * `POST /execute {language: 'python'|'bash', code}` runs the code in a fresh working directory and
 * answers `{exitCode, stdout, stderr, files}` (files: names left in the working directory).
 *   naive: spawns /usr/bin/python3 (or bash) directly, no isolation at all;
 *   bwrap: the same inside `bwrap --unshare-all` with a read-only /usr, a cold interpreter per request;
 *   runsc: the same inside gVisor (`runsc do`, its root an overlay of the host's).
 * Requests must carry X-Bench-Token: $HUTCH_BENCH_TOKEN. Listens on a free loopback port and prints it as the first line on stdout. Matplotlib's cache
 * directory comes from MPLCONFIGDIR (the bench builds it once).
 */
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'

type Mode = 'naive' | 'bwrap' | 'runsc'

const mode = process.argv[2] as Mode
if (!['naive', 'bwrap', 'runsc'].includes(mode)) {
  process.stderr.write('usage: spawn-server.ts naive|bwrap|runsc\n')
  process.exit(2)
}
// Whoever can reach loopback could otherwise run code here as the bench's user (root): a request
// must carry the token the bench chose (HUTCH_BENCH_TOKEN) in X-Bench-Token.
const token = process.env['HUTCH_BENCH_TOKEN'] ?? ''
if (token.length < 16) {
  process.stderr.write('HUTCH_BENCH_TOKEN (16 characters or more) is required\n')
  process.exit(2)
}
const mplConfigDir = process.env['MPLCONFIGDIR'] ?? path.join(os.tmpdir(), 'hutch-bench-mpl')
const interpreters = { python: ['/usr/bin/python3', '-c'], bash: ['/usr/bin/bash', '-c'] } as const
const env = {
  PATH: '/usr/bin:/bin',
  LANG: 'C.UTF-8',
  HOME: '/tmp',
  MPLBACKEND: 'Agg',
  MPLCONFIGDIR: mplConfigDir,
}

/** The command line that runs `code` in `workdir` for this mode. */
function commandLine(language: keyof typeof interpreters, code: string, workdir: string): string[] {
  const interpreter = [...interpreters[language], code]
  if (mode === 'naive') return interpreter
  if (mode === 'runsc') {
    return ['runsc', '--network=none', '--ignore-cgroups', 'do', '--cwd', workdir, ...interpreter]
  }
  // prettier-ignore
  return [
    'bwrap',
    '--unshare-all',
    '--die-with-parent',
    '--new-session',
    '--ro-bind', '/usr', '/usr',
    '--symlink', 'usr/lib', '/lib',
    '--symlink', 'usr/lib64', '/lib64',
    '--symlink', 'usr/bin', '/bin',
    '--ro-bind', '/etc/ld.so.cache', '/etc/ld.so.cache',
    '--ro-bind', '/etc/alternatives', '/etc/alternatives',
    '--ro-bind-try', '/etc/fonts', '/etc/fonts',
    '--ro-bind-try', '/etc/matplotlibrc', '/etc/matplotlibrc',
    '--proc', '/proc',
    '--dev', '/dev',
    '--tmpfs', '/tmp',
    '--bind', mplConfigDir, mplConfigDir,
    '--bind', workdir, '/work',
    '--chdir', '/work',
    '--clearenv',
    ...Object.entries(env).flatMap(([name, value]) => ['--setenv', name, value]),
    ...interpreter,
  ]
}

function execute(
  language: keyof typeof interpreters,
  code: string,
): Promise<{ exitCode: number | null; stdout: string; stderr: string; files: string[] }> {
  const workdir = fs.mkdtempSync(path.join(os.tmpdir(), `hutch-bench-${mode}-`))
  const [command, ...args] = commandLine(language, code, workdir)
  return new Promise((resolve, reject) => {
    const child = spawn(command ?? '', args, {
      cwd: workdir,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const stdout: Buffer[] = []
    const stderr: Buffer[] = []
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk))
    child.stderr.on('data', (chunk: Buffer) => stderr.push(chunk))
    child.on('error', reject)
    child.on('close', (exitCode) => {
      const files = fs.readdirSync(workdir)
      fs.rmSync(workdir, { recursive: true, force: true })
      resolve({
        exitCode,
        stdout: Buffer.concat(stdout).toString(),
        stderr: Buffer.concat(stderr).toString(),
        files,
      })
    })
  })
}

const server = http.createServer((request, response) => {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    const answer = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' })
      response.end(JSON.stringify(body))
    }
    if (request.headers['x-bench-token'] !== token) {
      answer(403, { error: 'X-Bench-Token is missing or wrong' })
      return
    }
    const { language, code } = JSON.parse(Buffer.concat(chunks).toString()) as {
      language: keyof typeof interpreters
      code: string
    }
    if (request.url !== '/execute' || !(language in interpreters)) {
      answer(404, { error: 'POST /execute {language: python|bash, code}' })
      return
    }
    execute(language, code).then(
      (result) => answer(200, result),
      (error: unknown) => answer(500, { error: String(error) }),
    )
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => {
  const address = server.address()
  process.stdout.write(`${typeof address === 'object' && address ? address.port : ''}\n`)
})
process.on('SIGTERM', () => server.close(() => process.exit(0)))
