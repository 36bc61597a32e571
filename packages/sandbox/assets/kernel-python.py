"""hutch's Python kernel driver: one IPython InteractiveShell that runs cell after cell.

Runs inside the sandbox. Commands arrive on fd 60 as a header line `<type> <id> <bytes>` and
`<bytes>` of payload; events leave on fd 61 as JSON lines, each optionally followed by
`payloadBytes` raw bytes. stdout and stderr are the real fds 1 and 2: after each cell a sentinel
is written on both, so output of the cell's subprocesses is told apart from the next cell's.
"""

import base64
import io
import json
import os
import signal
import sys
import types

COMMANDS_FD = 60
EVENTS_FD = 61
STATE_MAGIC = b"hutch-kernel:python:1\n"

# Neither pipe may leak into the cells' subprocesses.
os.set_inheritable(COMMANDS_FD, False)
os.set_inheritable(EVENTS_FD, False)
commands = os.fdopen(COMMANDS_FD, "rb", buffering=0)

# Idle, an interrupt does nothing; hutch only interrupts a running cell.
signal.signal(signal.SIGINT, signal.SIG_IGN)


def send(event, payload=None):
    if payload is not None:
        event["payloadBytes"] = len(payload)
    # A newline first ends whatever partial line a cell may have left on the pipe.
    data = b"\n" + json.dumps(event, separators=(",", ":")).encode("utf-8") + b"\n"
    if payload is not None:
        data += payload
    view = memoryview(data)
    while view:
        written = os.write(EVENTS_FD, view)
        view = view[written:]


def read_exactly(count):
    chunks = []
    while count > 0:
        chunk = commands.read(count)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def read_command():
    header = b""
    while not header.endswith(b"\n"):
        byte = commands.read(1)
        if not byte:
            return None
        header += byte
    kind, ident, size = header.decode("ascii").split()
    return kind, ident, read_exactly(int(size))


def light_ipython():
    """Makes `IPython` a bare package: its __init__ loads the terminal application (prompt_toolkit,
    the debugger), about half of the kernel's start, and a kernel needs none of it. The first use
    of a name the bare package lacks (IPython.embed, say) runs the real __init__ in it."""
    import importlib.util

    spec = importlib.util.find_spec("IPython")
    package = types.ModuleType("IPython")
    package.__path__ = list(spec.submodule_search_locations)
    package.__file__ = spec.origin
    package.__spec__ = spec

    def get_ipython():
        from IPython.core.getipython import get_ipython as real

        return real()

    def rest(name):
        if name.startswith("__"):
            raise AttributeError(name)
        del package.__getattr__
        with open(spec.origin, encoding="utf-8") as source:
            exec(compile(source.read(), spec.origin, "exec"), package.__dict__)
        return getattr(package, name)

    package.get_ipython = get_ipython
    package.__getattr__ = rest
    sys.modules["IPython"] = package


light_ipython()
# Completion is never asked of this shell: its completer need not import jedi.
sys.modules["jedi"] = None
from traitlets.config import Config  # noqa: E402
from IPython.core.displayhook import DisplayHook  # noqa: E402
from IPython.core.displaypub import DisplayPublisher  # noqa: E402
from IPython.core.interactiveshell import InteractiveShell  # noqa: E402

current = {"id": None, "result": None}


def jsonable(bundle):
    out = {}
    for mime, value in bundle.items():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        elif not isinstance(value, (str, dict, list, int, float, bool)) and value is not None:
            value = str(value)
        out[mime] = value
    return out


class HutchDisplayPublisher(DisplayPublisher):
    def publish(self, data, metadata=None, source=None, *, transient=None, update=False, **kwargs):
        sys.stdout.flush()
        sys.stderr.flush()
        send({"type": "display", "id": current["id"], "bundle": jsonable(data)})

    def clear_output(self, wait=False):
        pass


class HutchDisplayHook(DisplayHook):
    def start_displayhook(self):
        pass

    def write_output_prompt(self):
        pass

    def write_format_data(self, format_dict, md_dict=None):
        current["result"] = jsonable(format_dict)

    def finish_displayhook(self):
        pass


class HutchShell(InteractiveShell):
    def ask_exit(self):
        # exit() and quit() end a terminal session; a kernel is ended by its owner.
        sys.stderr.write("exit() does not end this kernel: restart or close it from outside\n")

    def _showtraceback(self, etype, evalue, stb):
        text = self.InteractiveTB.stb2text(stb)
        current["error"] = {
            "name": getattr(etype, "__name__", str(etype)),
            "value": str(evalue),
            "traceback": text,
        }
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


config = Config()
config.HistoryManager.enabled = False
shell = HutchShell.instance(
    config=config,
    displayhook_class=HutchDisplayHook,
    display_pub_class=HutchDisplayPublisher,
    colors="NoColor",
    autocall=0,
    automagic=False,
    history_length=0,
)
# The shell imported its completer: cells may import jedi themselves.
del sys.modules["jedi"]
shell.display_formatter.active_types = shell.display_formatter.format_types
# `!cmd` writes to the real descriptors, as os.system does, not through a pseudo-terminal.
shell.system = shell.system_raw
os.chdir("/work")


def flush_figures():
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is None:
        return
    for number in pyplot.get_fignums():
        figure = pyplot.figure(number)
        buffer = io.BytesIO()
        try:
            figure.savefig(buffer, format="png", bbox_inches="tight")
        except Exception as error:  # a broken figure must not break the cell's result
            sys.stderr.write(f"could not render figure {number}: {error}\n")
            continue
        width, height = figure.get_size_inches() * figure.dpi
        send(
            {
                "type": "display",
                "id": current["id"],
                "bundle": {
                    "image/png": base64.b64encode(buffer.getvalue()).decode("ascii"),
                    "text/plain": f"<Figure size {int(width)}x{int(height)} with {len(figure.axes)} Axes>",
                },
            }
        )
    pyplot.close("all")


def run_cell(ident, code):
    current.update({"id": ident, "result": None, "error": None})
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        outcome = shell.run_cell(code, store_history=True)
        flush_figures()
    except KeyboardInterrupt:
        outcome = None
        current["error"] = {"name": "KeyboardInterrupt", "value": "", "traceback": "KeyboardInterrupt"}
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout.flush()
    sys.stderr.flush()
    sentinel = b"\0hutch-cell-end:" + ident.encode("ascii") + b"\0"
    for fd in (1, 2):
        try:
            os.write(fd, sentinel)
        except OSError:
            pass
    event = {
        "type": "done",
        "id": ident,
        "executionCount": shell.execution_count - 1,
        "ok": current["error"] is None and (outcome is None or outcome.success),
    }
    if current["error"] is not None:
        event["error"] = current["error"]
    if current["result"] is not None:
        event["result"] = current["result"]
    send(event)
    current["id"] = None


# Names IPython puts in the namespace, and names it derives from history.
HIDDEN = set(shell.user_ns_hidden) | {"In", "Out", "exit", "quit", "get_ipython", "_oh", "_ih", "_dh"}


def is_internal(name):
    if name in HIDDEN or (name.startswith("__") and name.endswith("__")):
        return True
    stripped = name.lstrip("_")
    return stripped == "" or stripped.isdigit() or (stripped.startswith("i") and stripped[1:].isdigit()) or stripped in ("i", "ii", "iii")


def lost_reason(value):
    if isinstance(value, types.GeneratorType):
        return "a generator cannot be saved: its paused frame is not picklable"
    if isinstance(value, (types.CoroutineType, types.AsyncGeneratorType)):
        return "a coroutine cannot be saved: its paused frame is not picklable"
    if isinstance(value, io.IOBase):
        return "an open file cannot be saved: reopen it after the restore"
    module = type(value).__module__ or ""
    if module in ("socket", "threading", "_thread", "subprocess", "multiprocessing.pool"):
        return f"a {type(value).__name__} cannot be saved: it holds a live resource"
    return None


def snapshot():
    import dill

    imports, candidates, saved, lost = [], {}, [], []
    for name, value in list(shell.user_ns.items()):
        if is_internal(name):
            continue
        if isinstance(value, types.ModuleType):
            imports.append([name, value.__name__])
            saved.append(name)
            continue
        reason = lost_reason(value)
        if reason is None:
            candidates[name] = value
        else:
            lost.append({"name": name, "reason": reason})
    try:
        # Pickled together, objects shared between names stay shared.
        blob = dill.dumps({"imports": imports, "values": candidates}, recurse=True)
        saved.extend(candidates)
    except Exception:
        blobs = {}
        for name, value in candidates.items():
            try:
                blobs[name] = dill.dumps(value, recurse=True)
                saved.append(name)
            except Exception as error:
                lost.append({"name": name, "reason": f"{type(error).__name__}: {error}"[:300]})
        blob = dill.dumps({"imports": imports, "blobs": blobs})
    if not saved:
        return None, saved, lost
    return STATE_MAGIC + blob, saved, lost


def rebind_globals(value, namespace):
    """A function dill pickled by value got a copy of its globals: give it the live namespace."""
    if isinstance(value, types.FunctionType) and value.__globals__ is not namespace:
        fresh = types.FunctionType(value.__code__, namespace, value.__name__, value.__defaults__, value.__closure__)
        fresh.__kwdefaults__ = value.__kwdefaults__
        fresh.__dict__.update(value.__dict__)
        fresh.__qualname__ = value.__qualname__
        fresh.__doc__ = value.__doc__
        fresh.__module__ = value.__module__
        return fresh
    if isinstance(value, type) and value.__module__ == "__main__":
        for attribute, member in list(vars(value).items()):
            if isinstance(member, types.FunctionType) and member.__globals__ is not namespace:
                try:
                    setattr(value, attribute, rebind_globals(member, namespace))
                except (AttributeError, TypeError):
                    pass
    return value


def restore(payload):
    import dill
    import importlib

    restored, lost = [], []
    if not payload.startswith(STATE_MAGIC):
        return restored, [{"name": "*", "reason": "the saved state is not a python kernel's"}]
    state = dill.loads(payload[len(STATE_MAGIC):])
    namespace = shell.user_ns
    for name, module in state.get("imports", []):
        try:
            namespace[name] = importlib.import_module(module)
            restored.append(name)
        except Exception as error:
            lost.append({"name": name, "reason": f"import {module} failed: {type(error).__name__}: {error}"[:300]})
    values = state.get("values")
    if values is None:
        values = {}
        for name, blob in state.get("blobs", {}).items():
            try:
                values[name] = dill.loads(blob)
            except Exception as error:
                lost.append({"name": name, "reason": f"{type(error).__name__}: {error}"[:300]})
    for name, value in values.items():
        namespace[name] = rebind_globals(value, namespace)
        restored.append(name)
    return restored, lost


def preload(names):
    """Imports modules ahead of the first cell (into sys.modules, not the user's namespace), so
    that a cell or a restore importing them later finds them loaded."""
    loaded, failed = [], []
    for name in names:
        try:
            __import__(name)
            loaded.append(name)
        except BaseException as error:  # noqa: BLE001 - a library that fails only costs speed
            failed.append({"name": name, "reason": f"{type(error).__name__}: {error}"[:300]})
    if "matplotlib.pyplot" in sys.modules:
        # The font cache is read on the first figure otherwise.
        import matplotlib.font_manager

        matplotlib.font_manager.fontManager.findfont("DejaVu Sans")
    return loaded, failed


send({"type": "ready", "pid": os.getpid()})
while True:
    command = read_command()
    if command is None:
        break
    kind, ident, payload = command
    if kind == "execute":
        run_cell(ident, payload.decode("utf-8", "replace"))
    elif kind == "snapshot":
        try:
            state, saved, lost = snapshot()
            send({"type": "snapshot", "id": ident, "saved": saved, "lost": lost}, state if state is not None else b"")
        except Exception as error:
            send({"type": "failed", "id": ident, "message": f"{type(error).__name__}: {error}"[:1000]})
    elif kind == "preload":
        try:
            loaded, failed = preload(json.loads(payload.decode("utf-8")))
            send({"type": "preloaded", "id": ident, "loaded": loaded, "failed": failed})
        except Exception as error:
            send({"type": "failed", "id": ident, "message": f"{type(error).__name__}: {error}"[:1000]})
    elif kind == "restore":
        try:
            restored, lost = restore(payload)
            send({"type": "restored", "id": ident, "restored": restored, "lost": lost})
        except Exception as error:
            send({"type": "failed", "id": ident, "message": f"{type(error).__name__}: {error}"[:1000]})
