"""The NVIDIA agent-toolkit local sandbox's model, for bench/fast-path.bench.ts.

    /usr/bin/python3 bench/baselines/nvidia_style_server.py

A threaded HTTP server (the toolkit uses Flask's threaded server; stdlib here) that, per
`POST /execute {generated_code, timeout, language}`, forks a multiprocessing.Process which exec()s
the code with stdout and stderr redirected, and hands the output back through a
multiprocessing.Queue; answers `{process_status: completed|error|timeout, stdout, stderr}`. The
server preimports nothing: each child imports what the code imports. No isolation. Bash code
runs from the forked child through subprocess (the toolkit's sandbox is Python-only). Each child
works in a fresh temporary directory, so the workloads write their files as everywhere else.
Requests must carry X-Bench-Token: $HUTCH_BENCH_TOKEN (the bench's own). Listens on a free
loopback port and prints it as the first line on stdout.
"""

import contextlib
import hmac
import io
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = os.environ.get('HUTCH_BENCH_TOKEN', '')


def execute_code_subprocess(generated_code, language, queue):
    workdir = tempfile.mkdtemp(prefix='hutch-bench-nvidia-')
    os.chdir(workdir)
    stdout, stderr = io.StringIO(), io.StringIO()
    status = 'completed'
    try:
        if language == 'bash':
            done = subprocess.run(['/usr/bin/bash', '-c', generated_code], capture_output=True, text=True)
            stdout.write(done.stdout)
            stderr.write(done.stderr)
            status = 'completed' if done.returncode == 0 else 'error'
        else:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                exec(generated_code, {})
    except Exception:
        stderr.write(traceback.format_exc())
        status = 'error'
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    queue.put({'process_status': status, 'stdout': stdout.getvalue(), 'stderr': stderr.getvalue()})


def execute(generated_code, timeout, language):
    queue = multiprocessing.Queue()
    process = multiprocessing.Process(
        target=execute_code_subprocess, args=(generated_code, language, queue)
    )
    process.start()
    try:
        result = queue.get(timeout=timeout)
    except Exception:
        process.kill()
        result = {'process_status': 'timeout', 'stdout': '', 'stderr': 'Timed out\n'}
    process.join()
    return result


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    # Headers and body go out in two writes: without this, Nagle and the client's delayed ACK add
    # ~40 ms to an answer, which would measure TCP rather than the model.
    disable_nagle_algorithm = True

    def do_POST(self):
        # Whoever can reach loopback could otherwise run code here as the bench's user (root).
        if not hmac.compare_digest(self.headers.get('x-bench-token', ''), TOKEN):
            self.send_response(403)
            self.send_header('content-length', '0')
            self.end_headers()
            return
        request = json.loads(self.rfile.read(int(self.headers.get('content-length', 0))))
        body = json.dumps(
            execute(request['generated_code'], request.get('timeout', 10), request.get('language', 'python'))
        ).encode()
        self.send_response(200)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


if __name__ == '__main__':
    if len(TOKEN) < 16:
        sys.exit('HUTCH_BENCH_TOKEN (16 characters or more) is required')
    multiprocessing.set_start_method('fork')
    # Flask's development server (werkzeug) listens with a backlog of 128; socketserver's is 5.
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()
