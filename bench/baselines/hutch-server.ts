/**
 * hutch's server for bench/fast-path.bench.ts, in a process of its own like every baseline (so
 * the bench's load generator does not share its event loop): the test harness's server, with its
 * own data, sandbox state and cgroups, settings from the environment.
 *
 *   node --conditions=hutch-source bench/baselines/hutch-server.ts
 *
 * Prints `<port> <dataDir>` as its first line on stdout; stops cleanly on SIGTERM.
 */
import { startTestServer } from '../../test/support/server.ts'

const server = await startTestServer({ env: { ...process.env } as Record<string, string> })
process.stdout.write(`${new URL(server.url).port} ${server.dataDir}\n`)
let stopping = false
process.on('SIGTERM', () => {
  if (stopping) return
  stopping = true
  void server.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  )
})
