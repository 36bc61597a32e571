import { describe, expect, it } from 'vitest'
import { CellOutput, cellSentinel } from './cell-output.ts'

function collect(output: CellOutput, id: string): { text: () => string; ended: () => boolean } {
  const chunks: Buffer[] = []
  let ended = false
  output.begin(
    id,
    (chunk) => chunks.push(Buffer.from(chunk)),
    () => {
      ended = true
    },
  )
  return { text: () => Buffer.concat(chunks).toString('latin1'), ended: () => ended }
}

describe('CellOutput', () => {
  it('cuts at the cell sentinel, whatever the chunks', () => {
    const stream = Buffer.concat([Buffer.from('hello '), cellSentinel('c1'), Buffer.from('late')])
    for (let size = 1; size <= stream.length; size++) {
      const output = new CellOutput()
      const cell = collect(output, 'c1')
      for (let at = 0; at < stream.length; at += size) output.push(stream.subarray(at, at + size))
      expect(cell.text()).toBe('hello ')
      expect(cell.ended()).toBe(true)
      // What came after the sentinel belongs to the next cell.
      const next = collect(output, 'c2')
      expect(next.text()).toBe('late')
    }
  })

  it("keeps another cell's sentinel and lookalikes as output", () => {
    const output = new CellOutput()
    const cell = collect(output, 'c1')
    const text = `a${cellSentinel('c0').toString('latin1')}b\0hutch-cell-end:c\0`
    output.push(Buffer.from(text, 'latin1'))
    output.end()
    expect(cell.text()).toBe(text)
    expect(cell.ended()).toBe(false)
  })

  it('bounds what comes while no cell runs', () => {
    const output = new CellOutput()
    for (let i = 0; i < 100; i++) output.push(Buffer.alloc(10_000, 120))
    const cell = collect(output, 'c1')
    expect(cell.text().length).toBe(64 * 1024)
  })
})
