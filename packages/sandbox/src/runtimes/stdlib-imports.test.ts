import { describe, expect, it } from 'vitest'
import { importsOnlyStandardLibrary, standardLibraryModules } from './stdlib-imports.ts'

describe('importsOnlyStandardLibrary', () => {
  const stdlib = new Set(['os', 'sys', 'json', 'collections', 'math', 'time', 'typing'])
  const only = (code: string) => importsOnlyStandardLibrary(code, stdlib)

  it('holds for code importing standard modules only, or nothing', () => {
    expect(only('print(1)')).toBe(true)
    expect(only('import os, sys\nimport json as j\nfrom collections import Counter')).toBe(true)
    expect(only('import os.path\nfrom os.path import join')).toBe(true)
    expect(only('def f():\n    import math\n    return math.pi\nprint(f())')).toBe(true)
    expect(only('import time; print(time.time())')).toBe(true)
    expect(only('from typing import (\n    Any,\n)')).toBe(true)
  })

  it('fails for any other import, in whatever form', () => {
    expect(only('import pandas')).toBe(false)
    expect(only('import os, numpy as np')).toBe(false)
    expect(only('import os; import pandas')).toBe(false)
    expect(only('from matplotlib import pyplot')).toBe(false)
    expect(only('if True:\n    import helper')).toBe(false)
    expect(only('from . import sibling')).toBe(false)
    expect(only('from .sibling import x')).toBe(false)
  })

  it('fails for imports it cannot see, and errs on the side of caution', () => {
    expect(only('m = __import__("pandas")')).toBe(false)
    expect(only('import importlib\nimportlib.import_module("pandas")')).toBe(false)
    expect(only('exec("import pandas")')).toBe(false)
    expect(only('eval("1")')).toBe(false)
    // Words in strings and comments count too.
    expect(only('print("import pandas")')).toBe(false)
    expect(only('# from numpy import x\nprint(1)')).toBe(false)
  })

  it('knows the interpreter’s own standard library', async () => {
    const modules = await standardLibraryModules('/usr/bin/python3')
    expect(modules.has('os')).toBe(true)
    expect(modules.has('json')).toBe(true)
    expect(modules.has('pandas')).toBe(false)
    expect(modules.size).toBeGreaterThan(200)
  })
})
