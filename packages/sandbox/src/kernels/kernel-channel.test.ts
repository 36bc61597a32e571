import { PassThrough } from 'node:stream'
import { describe, expect, it } from 'vitest'
import type { DriverEvent } from './kernel-channel.ts'
import { KernelChannel } from './kernel-channel.ts'

function channel(acceptsPayload = true): {
  events: PassThrough
  commands: PassThrough
  seen: DriverEvent[]
  channel: KernelChannel
} {
  const events = new PassThrough()
  const commands = new PassThrough()
  const seen: DriverEvent[] = []
  const created = new KernelChannel(
    commands,
    events,
    { maxLineBytes: 100, maxPayloadBytes: 10, acceptsPayload: () => acceptsPayload },
    (event) => seen.push(event),
  )
  return { events, commands, seen, channel: created }
}

const settle = () => new Promise((resolve) => setImmediate(resolve))

describe('KernelChannel', () => {
  it('reads JSON lines and their payloads across chunks', async () => {
    const { events, seen } = channel()
    const stream = Buffer.from('\n{"type":"a"}\n{"type":"b","payloadBytes":3}\nxyz{"type":"c"}\n')
    for (const byte of stream) events.write(Buffer.from([byte]))
    await settle()
    expect(seen.map((event) => [event.fields['type'], event.payload?.toString()])).toEqual([
      ['a', undefined],
      ['b', 'xyz'],
      ['c', undefined],
    ])
  })

  it('drops garbage, oversized lines and payloads, and goes on', async () => {
    const { events, seen, channel: created } = channel()
    events.write('not json\n[1]\n"s"\n')
    events.write(`{"type":"long","x":"${'y'.repeat(200)}"}\n`)
    events.write('{"type":"big","payloadBytes":50}\n' + 'z'.repeat(50))
    events.write('{"type":"bad","payloadBytes":-1}\n')
    events.write('{"type":"ok"}\n')
    await settle()
    expect(seen.map((event) => event.fields['type'])).toEqual(['ok'])
    expect(created.dropped).toBe(6)
  })

  it('ignores payload lengths the kernel does not expect', async () => {
    const { events, seen } = channel(false)
    events.write('{"type":"display","payloadBytes":999999}\n{"type":"done"}\n')
    await settle()
    expect(seen.map((event) => event.fields['type'])).toEqual(['display', 'done'])
  })

  it('frames commands as a header line and the payload', async () => {
    const { commands, channel: created } = channel()
    await created.send('execute', 'c1', Buffer.from('print(1)'))
    expect((commands.read() as Buffer | null)?.toString()).toBe('execute c1 8\nprint(1)')
  })
})
