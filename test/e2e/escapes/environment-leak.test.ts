import { beforeAll, describe, expect, it } from 'vitest'
import { python, testSandbox } from '../../support/sandbox.ts'

// DESIGN 3.4: nothing of the server crosses into a sandbox.
describe('escape: reading the server environment', () => {
  const secret = 'hutch-test-secret-7f3a9c'

  beforeAll(async () => {
    process.env['HUTCH_TEST_SECRET'] = secret
    await testSandbox()
  })

  it('finds nothing of the caller in /proc/1/environ, /proc/1/cmdline or any /proc/*/environ', async () => {
    const result = await python(`
import os
seen = []
for pid in os.listdir('/proc'):
    if not pid.isdigit():
        continue
    for name in ('environ', 'cmdline'):
        try:
            seen.append(open(f'/proc/{pid}/{name}', 'rb').read().decode('utf8', 'replace'))
        except OSError:
            pass
try:
    print(repr(open('/proc/1/environ', 'rb').read()))
except PermissionError:
    # The fast path's init is not dumpable: its environment cannot be read at all.
    print(repr(b''))
print('\\n'.join(seen))
`)
    expect(result.status).toBe('ok')
    expect(result.stdout).not.toContain(secret)
    expect(result.stdout).not.toContain('HUTCH_TEST_SECRET')
    expect(result.stdout).not.toContain('npm_config')
    expect(result.stdout.split('\n')[0]).toBe("b''")
  })

  it('finds no argument of the server in its own environment', async () => {
    const result = await python('import os; print(sorted(os.environ))')
    expect(result.stdout).not.toContain('HUTCH_TEST_SECRET')
    expect(result.stdout).not.toContain('VITEST')
  })
})
