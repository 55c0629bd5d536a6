"""A lab node's console: a stand-in for CockroachDB's DB Console TLS listener on `http_addr`.

PostgreSQL has no HTTP port and this machine cannot run CockroachDB, so a lab started
with `console=True` gives every node a small real process (core/lab/console_server.py,
Python's ssl module) that does what the DB Console's listener does with certificates:
direct TLS on 127.A.B.i:<http port>, `ui.crt`/`ui.key` from the node's certs dir when
both exist, else `node.crt`/`node.key`, re-read on SIGHUP. It serves no DB Console.

    console = LabConsole(workdir, "127.4.5.1", 8080, certs_dir, run_as)
    console.start()                     # returns once it serves TLS
    console.pid_path                    # read by the node's reload command
    console.stop()                      # by pid: SIGTERM, then SIGKILL; idempotent

It runs as the account PostgreSQL runs as (it reads node.key, 0600 and theirs), under
an interpreter that account can execute, from a copy of the script in `workdir`.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import time
from pathlib import Path

from core.errors import CertRotateError
from core.lab.procs import (
    LabServer,
    RunAs,
    log_tail,
    read_pid_file,
    stop_pid,
    track_running,
    untrack_running,
)

DEFAULT_HTTP_PORT = 8080
SCRIPT = Path(__file__).with_name("console_server.py")


@functools.lru_cache(maxsize=None)
def python_for(run_as: RunAs) -> str:
    """An interpreter `run_as` may execute: ours when it is us, else the first that works for it
    (ours may live in a home directory other accounts cannot enter)."""
    candidates = [sys.executable]
    if not run_as.is_current:
        candidates += [c for c in ("/usr/bin/python3", shutil.which("python3"), "/usr/local/bin/python3") if c]
    for candidate in dict.fromkeys(candidates):
        if run_as.is_current:
            return candidate
        try:
            result = subprocess.run([candidate, "-I", "-c", "import ssl, http.server"], capture_output=True,
                                    timeout=30, stdin=subprocess.DEVNULL, **run_as.popen_kwargs())
        except (OSError, subprocess.SubprocessError):
            continue
        if result.returncode == 0:
            return candidate
    raise CertRotateError(f"The lab console needs a Python 3 the {run_as.name} account can run; install python3.")


class LabConsole(LabServer):
    """The console process of one lab node; its files live in `workdir`."""

    what = "console"

    def __init__(self, workdir: Path, address: str, port: int, certs_dir: Path, run_as: RunAs, *,
                 name: str | None = None, start_timeout: float = 30.0, sql_ca_file: str | None = None) -> None:
        self.sql_ca_file = sql_ca_file  # set: it stands in for the SQL port (core/lab/console_server.py --sql)
        self.workdir = Path(workdir)
        self.address = address
        self.port = port
        self.certs_dir = Path(certs_dir)
        self.run_as = run_as
        self.name = name or address
        self.start_timeout = start_timeout
        self.script_path = self.workdir / SCRIPT.name
        self.pid_path = self.workdir / "console.pid"
        self.log_path = self.workdir / "console.log"
        self._process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"LabConsole({self.name} on {self.http_addr}, pid={self.pid})"

    @property
    def http_addr(self) -> str:
        return f"{self.address}:{self.port}"

    def prepare(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.run_as.chown(self.workdir)  # the server writes its pid file here
        shutil.copyfile(SCRIPT, self.script_path)
        os.chmod(self.script_path, 0o644)

    def start(self) -> None:
        """Start the console and return once it completes TLS handshakes; a no-op while it runs."""
        if self.running:
            return
        self.prepare()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        track_running(self)
        argv = [python_for(self.run_as), "-I", str(self.script_path), "--address", self.address, "--port",
                str(self.port), "--certs-dir", str(self.certs_dir), "--pid-file", str(self.pid_path)]
        argv += ["--sql", self.sql_ca_file] if self.sql_ca_file else []
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                             cwd=self.workdir, start_new_session=True, **self.run_as.popen_kwargs())
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                self._process = None
                untrack_running(self)
                raise CertRotateError(f"The lab console for {self.name} on {self.http_addr} did not start: "
                                      f"{log_tail(self.log_path)}")
            if read_pid_file(self.pid_path) == self._process.pid and self._answers_tls():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise CertRotateError(f"The lab console for {self.name} on {self.http_addr} did not answer within "
                                      f"{self.start_timeout:.0f} s: {log_tail(self.log_path)}")
            time.sleep(0.02)

    def _answers_tls(self) -> bool:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection((self.address, self.port), timeout=1.0) as raw:
                if self.sql_ca_file:  # the SQL stand-in starts like PostgreSQL: SSLRequest, then 'S'
                    raw.sendall(struct.pack("!ii", 8, 80877103))
                    if raw.recv(1) != b"S":
                        return False
                with context.wrap_socket(raw, server_hostname=self.address):
                    return True
        except (OSError, ssl.SSLError):
            return False

    def stop(self) -> None:
        stop_pid(self.pid, process=self._process)
        self._process = None
        untrack_running(self)
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
