"""Helpers for the rotation tests: the CLI as a subprocess, node file snapshots, a live client."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import tomli_w
from cryptography import x509

from core.config import state as state_mod
from core.lab.cluster import Lab

CERTROTATE = [sys.executable, "-m", "tui"]
FUTURE = "2099-01-01T00:00:00Z"


def certrotate(lab: Lab, *args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """Run the real CLI against the lab's state file, as an operator would."""
    return subprocess.run(
        [*CERTROTATE, *args, "--state", str(lab.state_path)],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )


def rotate_ca_to_idle(lab: Lab) -> str:
    """A whole `start ca` as an operator runs it: the trust step, then after the wait the rest; its output."""
    assert certrotate(lab, "start", "ca").returncode == 0
    trust = certrotate(lab, "advance")
    assert trust.returncode == 0, trust.stderr
    rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert rest.returncode == 0, rest.stderr + rest.stdout
    return rest.stdout


def edit_inventory(lab: Lab, change) -> None:
    """Edit the hand-written inventory like an operator with an editor would."""
    data = tomllib.loads(lab.state_path.read_text())
    change(data)
    lab.state_path.write_text(tomli_w.dumps(data))


def node_files(lab: Lab) -> dict[str, dict[str, str]]:
    """sha256 of every file in every node's certs dir (backups and temps included)."""
    out = {}
    for node in lab.nodes:
        out[node.name] = {
            str(p.relative_to(node.certs_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(node.certs_dir.rglob("*")) if p.is_file()
        }
    return out


def served(lab: Lab, node) -> x509.Certificate:
    from core.remote.probes import probe_sql
    return probe_sql(node.sql_addr).leaf


def certs_in(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


@dataclass
class LiveClient:
    """An application that keeps opening verify-full connections to every node.

    It reads its certificate files from `certs_dir` (the dir the rotation delivers to) on
    start and whenever its `restart` command touches `restart_marker` — like a real
    application, which loads its TLS files when it (re)starts. A key and a certificate
    are two files; no reader that opens them one after the other can see them swapped
    atomically, which is why [[clients]] has a `restart` (docs/state-file.md).
    """

    lab: Lab
    certs_dir: Path
    user: str
    restart_marker: Path
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    reloads: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._private = Path(tempfile.mkdtemp(prefix="certrotate-client-"))
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._marker_seen: float | None = None

    def _load_files(self) -> None:
        for name in ("ca.crt", f"client.{self.user}.crt", f"client.{self.user}.key"):
            shutil.copy2(self.certs_dir / name, self._private / name)
        os.chmod(self._private / f"client.{self.user}.key", 0o600)
        self.reloads += 1

    def _marker(self) -> float | None:
        try:
            return self.restart_marker.stat().st_mtime_ns
        except FileNotFoundError:
            return None

    def _loop(self) -> None:
        while not self._stop.is_set():
            marker = self._marker()
            if marker != self._marker_seen:
                self._load_files()
                self._marker_seen = marker
            for node in self.lab.nodes:
                try:
                    with psycopg.connect(
                        host=node.address, port=node.sql_port, user=self.user, dbname="postgres",
                        sslmode="verify-full", sslrootcert=str(self._private / "ca.crt"),
                        sslcert=str(self._private / f"client.{self.user}.crt"),
                        sslkey=str(self._private / f"client.{self.user}.key"), connect_timeout=5,
                    ) as conn:
                        conn.execute("select 1").fetchone()
                    self.ok += 1
                except psycopg.Error as error:
                    self.failures.append(f"{node.name}: {error}")
            time.sleep(0.01)

    def __enter__(self) -> "LiveClient":
        self._load_files()
        self._marker_seen = self._marker()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(30)
        shutil.rmtree(self._private, ignore_errors=True)


def lab_with_restarting_client(lab_factory, nodes: int, **lab_options) -> tuple[Lab, Path]:
    """A lab whose `app` client is delivered over SSH and "restarts" by touching a marker file
    that LiveClient watches; verification is kept short so failures show quickly."""
    lab = lab_factory(nodes, ssh_clients=("app",), **lab_options)
    marker = lab.client_host("app").certs_dir / "restarted"

    def add_restart(data):
        for client in data["clients"]:
            if client["user"] == "app":
                client["restart"] = f"touch {marker}"
        data["cluster"]["verify_timeout_seconds"] = 5
    edit_inventory(lab, add_restart)
    return lab, marker


def set_node_reload(lab: Lab, node: str, command: str) -> None:
    """Change one node's reload command in the state file, as an operator with an editor would."""
    state = state_mod.load(lab.state_path)
    nodes = tuple(dataclasses.replace(n, reload=command) if n.name == node else n for n in state.inventory.nodes)
    state.inventory = dataclasses.replace(state.inventory, nodes=nodes)
    state_mod.save(state)
