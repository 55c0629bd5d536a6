"""Real client stacks that keep connecting through a rotation: libpq (psql), psycopg, PgJDBC, node-postgres, Go.

Each stack behaves like an application: it loads its TLS files when it (re)starts. The
rotation's `restart` command touches a marker; `Snapshots` then copies the client's certs
dir into a new versioned directory and swaps a `current` link to it, and every stack opens
each new connection with the files of the directory `current` points at at that moment
(resolved once per connection, so no connection mixes two versions). The stacks run as
their own programs (tests/client_stacks/), started and stopped by pid, and report one
"ok NODE" or "fail NODE: why" line per connection, which `Tally` counts per rotation phase.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

HERE = Path(__file__).parent / "client_stacks"
ROOT = Path(__file__).parent.parent
PGJDBC_JAR = Path("/usr/share/java/postgresql.jar")
NODE_MODULES = ROOT / ".venv" / "node" / "node_modules"
STACKS = ("libpq", "psycopg", "pgjdbc", "node-postgres", "go")


def missing_toolchains() -> list[str]:
    """What `make test` installs for these stacks and this machine lacks (empty: all there)."""
    missing = [tool for tool in ("psql", "java", "javac", "go", "node") if shutil.which(tool) is None]
    if not PGJDBC_JAR.exists():
        missing.append(str(PGJDBC_JAR))
    if not (NODE_MODULES / "pg" / "package.json").exists():
        missing.append("node-postgres in .venv/node")
    return missing


class Snapshots:
    """The application's view of its certs dir: a copy per restart, behind an atomically swapped link."""

    def __init__(self, certs_dir: Path, marker: Path):
        self.certs_dir, self.marker = certs_dir, marker
        self.root = Path(tempfile.mkdtemp(prefix="certrotate-stacks-"))
        self.current = self.root / "current"
        self.versions = 0
        self._seen: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _marker(self) -> int | None:
        try:
            return self.marker.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def take(self) -> None:
        self.versions += 1
        version = self.root / f"v{self.versions}"
        version.mkdir()
        for path in self.certs_dir.iterdir():
            if path.is_file() and path.name.startswith(("ca.", "client.")):
                shutil.copy2(path, version / path.name)
        link = self.root / f".current-{self.versions}"
        link.symlink_to(version.name)
        os.replace(link, self.current)

    def _watch(self) -> None:
        while not self._stop.wait(0.02):  # an application polling for its restart signal
            marker = self._marker()
            if marker != self._seen:
                self._seen = marker
                self.take()

    def start(self) -> None:
        self._seen = self._marker()
        self.take()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass
class Tally:
    """Connections per stack per phase; `phase` is set by whoever follows the rotation."""

    phase: str = "before"
    ok: dict[tuple[str, str], int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, stack: str, line: str) -> None:
        with self.lock:
            if line.startswith("ok "):
                self.ok[(stack, self.phase)] = self.ok.get((stack, self.phase), 0) + 1
            elif line.startswith("fail "):
                self.failures.append(f"{stack} in {self.phase}: {line[5:]}")

    def ok_in(self, stack: str, phase: str) -> int:
        with self.lock:
            return self.ok.get((stack, phase), 0)


class StackRunner:
    """Every stack connecting to `nodes` (host:port) as `user` with the files behind `snapshots.current`."""

    def __init__(self, snapshots: Snapshots, user: str, nodes: list[str], tally: Tally, work: Path):
        self.snapshots, self.user, self.nodes, self.tally, self.work = snapshots, user, nodes, tally, work
        self.processes: dict[str, subprocess.Popen] = {}
        self.threads: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- programs of their own -----------------------------------------------------------------

    def build(self) -> dict[str, list[str]]:
        """Command lines of the compiled stacks (Go is built here, Java runs from source)."""
        go_binary = self.work / "probe-go"
        env = {**os.environ, "GOCACHE": str(self.work / "gocache"), "GOPATH": str(self.work / "gopath"),
               "GO111MODULE": "off", "HOME": str(self.work)}
        subprocess.run(["go", "build", "-o", str(go_binary), str(HERE / "probe.go")], check=True, env=env,
                       capture_output=True, timeout=300)
        args = [str(self.snapshots.current), self.user, *self.nodes]
        return {
            "pgjdbc": ["java", "-cp", str(PGJDBC_JAR), str(HERE / "Probe.java"), *args],
            "node-postgres": ["node", str(HERE / "probe.js"), *args],
            "go": [str(go_binary), *args],
        }

    def _read(self, stack: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.tally.count(stack, line.strip())

    # -- stacks driven from here -----------------------------------------------------------------

    def _files(self) -> Path:
        return self.snapshots.current.resolve()

    def _libpq(self) -> None:
        while not self._stop.is_set():
            for node in self.nodes:
                d = self._files()
                host, port = node.rsplit(":", 1)
                conninfo = (f"host={host} port={port} user={self.user} dbname=postgres sslmode=verify-full "
                            f"sslrootcert={d / 'ca.crt'} sslcert={d / f'client.{self.user}.crt'} "
                            f"sslkey={d / f'client.{self.user}.key'} connect_timeout=5")
                result = subprocess.run(["psql", conninfo, "-XAtqc", "select 1"], capture_output=True, text=True,
                                        timeout=30)
                ok = result.returncode == 0 and result.stdout.strip() == "1"
                self.tally.count("libpq", f"ok {node}" if ok else f"fail {node}: {result.stderr.strip()}")

    def _psycopg(self) -> None:
        while not self._stop.is_set():
            for node in self.nodes:
                d = self._files()
                host, port = node.rsplit(":", 1)
                try:
                    with psycopg.connect(host=host, port=int(port), user=self.user, dbname="postgres",
                                         sslmode="verify-full", sslrootcert=str(d / "ca.crt"),
                                         sslcert=str(d / f"client.{self.user}.crt"),
                                         sslkey=str(d / f"client.{self.user}.key"), connect_timeout=5) as conn:
                        conn.execute("select 1").fetchone()
                    self.tally.count("psycopg", f"ok {node}")
                except psycopg.Error as error:
                    self.tally.count("psycopg", f"fail {node}: {error}")
            self._stop.wait(0.05)

    def start(self) -> None:
        for stack, command in self.build().items():
            process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                       env={**os.environ, "NODE_PATH": str(NODE_MODULES)})
            self.processes[stack] = process
            self.threads.append(threading.Thread(target=self._read, args=(stack, process), daemon=True))
        self.threads += [threading.Thread(target=self._libpq, daemon=True),
                         threading.Thread(target=self._psycopg, daemon=True)]
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for process in self.processes.values():
            process.terminate()  # our own child, by its pid
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        for thread in self.threads:
            thread.join(30)


def follow_rotation(args: list[str], tally: Tally, env: dict | None = None, timeout: float = 300) -> tuple[int, str]:
    """Run the CLI, setting `tally.phase` from the step column of its progress lines as they come."""
    process = subprocess.Popen([sys.executable, "-m", "tui", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env={**os.environ, **(env or {})}, cwd=ROOT)
    lines = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line)
        words = line.split()
        if len(words) > 2 and words[1] in ("trust", "leaf", "retire"):
            with tally.lock:
                tally.phase = words[1]
    return process.wait(timeout), "".join(lines)
