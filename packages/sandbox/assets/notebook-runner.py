"""hutch's notebook runner: executes a .ipynb top to bottom with nbclient, in place.

Runs inside the sandbox (network loopback: nbclient talks to its ipykernel over ZeroMQ on
127.0.0.1). Usage: notebook-runner.py NOTEBOOK DEADLINE_SECONDS. The notebook is written back
after every cell, so that a run killed at its time limit still returns the cells that ran. It
stops at the first cell that raises, as `jupyter nbconvert --execute` does; exit status 1 then.
"""

import os
import sys
import time

path = sys.argv[1]
deadline = time.monotonic() + float(sys.argv[2])

# Figures come back inline, as in Jupyter, instead of through the Agg backend of plain runs.
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
os.environ.setdefault("JUPYTER_RUNTIME_DIR", "/tmp/.jupyter-runtime")
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError  # noqa: E402

try:
    notebook = nbformat.read(path, as_version=4)
except Exception as error:
    sys.stderr.write(f"{path} is not a notebook: {type(error).__name__}: {error}\n")
    sys.exit(2)

client = NotebookClient(
    notebook,
    kernel_name="python3",
    resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
    allow_errors=False,
    record_timing=False,
    startup_timeout=60,
)


def save():
    nbformat.write(notebook, path)


status = 0
with client.setup_kernel():
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "code":
            continue
        client.timeout = max(1, int(deadline - time.monotonic()))
        try:
            client.execute_cell(cell, index)
        except CellTimeoutError:
            sys.stderr.write(f"cell {index} did not finish in time\n")
            status = 1
            save()
            break
        except CellExecutionError:
            status = 1
            save()
            break
        save()
save()
sys.exit(status)
