import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type { Sandbox } from '@hutch/sandbox'
import { closeTestSandboxes, testSandbox } from '../../../../test/support/sandbox.ts'
import type { SessionServiceBed } from '../../../../test/support/session-service.ts'
import { sessionServiceBed } from '../../../../test/support/session-service.ts'
import { namespaceOf } from '../namespace.ts'
import type { SessionServiceOptions } from './session-service.ts'
import type { SessionService } from './session-service.ts'

const alice = namespaceOf('alice', 'chat-1')
const bob = namespaceOf('bob', 'chat-1')

/** A module no kernel imports by itself: its presence says the kernel came from the standby. */
const marker = 'colorsys'
const fromStandby = `import sys\nprint('${marker}' in sys.modules, '${marker}' in globals())`

// Real kernels in real sandboxes, a real SQLite database and real local storage.
describe('SessionService with a standby of kernels', () => {
  let sandbox: Sandbox
  let bed: SessionServiceBed

  beforeAll(async () => {
    sandbox = await testSandbox()
  })
  afterAll(async () => {
    await closeTestSandboxes()
  })
  beforeEach(async () => {
    bed = await sessionServiceBed(sandbox)
  })
  afterEach(async () => {
    await bed.close()
  })

  /** A service whose standby keeps `size` kernels with the marker module preloaded. */
  function build(options: Partial<SessionServiceOptions> = {}, size = 1): SessionService {
    const service = bed.build(
      { maxSessionsPerNamespace: 4, ...options },
      { size, preload: [marker] },
    )
    service.start()
    return service
  }

  /** Waits until the standby has `ready` kernels ready and none starting. */
  async function standbyReady(of: SessionService, ready = 1): Promise<void> {
    const deadline = Date.now() + 30_000
    for (;;) {
      const { standby } = of.stats()
      if (standby.ready === ready && standby.starting === 0) return
      if (Date.now() > deadline) throw new Error(`standby never ready: ${JSON.stringify(standby)}`)
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  }

  it('gives each new session a kernel of its own, used once, and starts another', async () => {
    const sessions = build()
    await standbyReady(sessions)
    const first = await sessions.create(alice, { language: 'python' })
    expect(sessions.stats().standby.taken).toBe(1)
    // Preloaded into sys.modules, not into the cells' namespace.
    expect((await sessions.execute(alice, first.id, { code: fromStandby })).stdout).toBe(
      'True False\n',
    )
    await sessions.execute(alice, first.id, {
      code: "sys.hutch_owner = 'alice'\nopen('alice.txt', 'w').write('mine')",
    })

    await standbyReady(sessions)
    const second = await sessions.create(bob, { language: 'python' })
    expect(sessions.stats().standby.taken).toBe(2)
    const seen = await sessions.execute(bob, second.id, {
      code: `${fromStandby}\nimport os\nprint(hasattr(sys, 'hutch_owner'), os.listdir('.'))`,
    })
    // Bob's kernel came from the standby too, and holds nothing of Alice's.
    expect(seen.stdout).toBe('True False\nFalse []\n')
    const still = await sessions.execute(alice, first.id, {
      code: "print(sys.hutch_owner, open('alice.txt').read())",
    })
    expect(still.stdout).toBe('alice mine\n')
    await standbyReady(sessions)
  })

  it('hands out only kernels whose fixed limits fit, and sets the per-cell ones', async () => {
    const sessions = build()
    await standbyReady(sessions)
    // Another memory limit: a kernel of its own; the standby keeps its kernel.
    const own = await sessions.create(alice, {
      language: 'python',
      limits: { memoryBytes: 300 * 1024 ** 2 },
    })
    expect((await sessions.execute(alice, own.id, { code: fromStandby })).stdout).toBe(
      'False False\n',
    )
    expect(sessions.stats().standby).toMatchObject({ ready: 1, taken: 0 })
    // Bash sessions never take the python standby.
    await sessions.create(alice, { language: 'bash' })
    expect(sessions.stats().standby).toMatchObject({ ready: 1, taken: 0 })

    // A cell timeout of its own fits: the standby kernel adopts it.
    const quick = await sessions.create(alice, { language: 'python', timeoutMs: 700 })
    expect(sessions.stats().standby.taken).toBe(1)
    expect((await sessions.execute(alice, quick.id, { code: fromStandby })).stdout).toBe(
      'True False\n',
    )
    const slow = await sessions.execute(alice, quick.id, {
      code: 'import time\ntime.sleep(20)',
    })
    expect(slow.status).toBe('timeout')
    expect(slow.reason).toContain('700 ms')
  })

  it('restores a COLD session into a standby kernel: state and workdir', async () => {
    let sessions = build({}, 0)
    const session = await sessions.create(alice, { language: 'python' })
    await sessions.execute(alice, session.id, {
      code: "x = 41\ndef inc(v):\n    return v + 1\nopen('kept.txt', 'w').write('on disk')",
    })
    await sessions.close('server stopping', 0)

    sessions = build()
    await standbyReady(sessions)
    const back = await sessions.execute(alice, session.id, {
      code: `print(inc(x), open('kept.txt').read())\n${fromStandby}`,
    })
    expect(back).toMatchObject({ status: 'ok', stdout: '42 on disk\nTrue False\n' })
    expect(back.restored?.names).toEqual(expect.arrayContaining(['x', 'inc']))
    expect(sessions.stats().standby.taken).toBe(1)
  })

  it('counts standby kernels against the HOT cap', async () => {
    const sessions = build({ maxHotSessions: 2 })
    await standbyReady(sessions)
    const older = await sessions.create(alice, { language: 'python' })
    await sessions.create(alice, { language: 'python' })
    // Two HOT sessions and a standby kernel are three running kernels: the older one freezes.
    await standbyReady(sessions)
    const deadline = Date.now() + 20_000
    while (sessions.stats().hot > 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    expect(sessions.stats()).toMatchObject({ hot: 1, warm: 1, standby: { ready: 1 } })
    expect((await sessions.get(alice, older.id)).state).toBe('warm')
  })

  it('starts no standby kernel when the HOT cap leaves no room', async () => {
    const sessions = build({ maxHotSessions: 0 })
    await new Promise((resolve) => setTimeout(resolve, 200))
    expect(sessions.stats().standby).toEqual({ ready: 0, starting: 0, taken: 0 })
  })
})
