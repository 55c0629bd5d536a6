"""Process helpers for the lab: who we run as, and stopping a process by its pid.

Every process the lab starts is stopped by its own pid (from `Popen` or its pid file),
never by name, so two labs — or a lab and a real server — on one machine never touch
each other's processes. Stopping is polite first (the server's own shutdown signal),
then SIGKILL after a grace period, and is idempotent: a pid that is already gone is fine.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import CertRotateError


@dataclass(frozen=True)
class RunAs:
    """An OS account a lab server runs as (root starts PostgreSQL as `postgres`)."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def named(cls, name: str) -> "RunAs":
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise CertRotateError(f"The lab needs the OS user {name!r}, which does not exist on this machine.") from None
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @classmethod
    def current(cls) -> "RunAs":
        entry = pwd.getpwuid(os.getuid())
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)

    @property
    def is_current(self) -> bool:
        return self.uid == os.getuid()

    def popen_kwargs(self) -> dict:
        """Arguments that make `subprocess.Popen` switch to this account in the child (no runuser in between,
        so the pid we get is the server's own pid)."""
        if self.is_current:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if not self.is_current:
            os.chown(path, self.uid, self.gid, follow_symlinks=False)


_running_servers: dict[int, object] = {}
_running_lock = threading.Lock()


def track_running(server: object) -> None:
    """Remember a started server, so that interpreter exit stops it if nobody else did."""
    with _running_lock:
        _running_servers[id(server)] = server


def untrack_running(server: object) -> None:
    with _running_lock:
        _running_servers.pop(id(server), None)


def _stop_running_servers() -> None:
    with _running_lock:
        servers = list(_running_servers.values())
    for server in servers:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(_stop_running_servers)


class LabServer:
    """What every lab server shares: its pid (from Popen, else its pid file) and SIGHUP by that pid.

    Subclasses set `pid_path`, `name` and `_process` and say what they are in `what`.
    """

    pid_path: Path
    name: str
    what = "server"
    _process: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        """The server's pid while it runs, else None."""
        if self._process is not None:
            return self._process.pid if self._process.poll() is None else None
        pid = read_pid_file(self.pid_path)
        return pid if pid and pid_alive(pid) else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def reload_command(self) -> str:
        """A shell command that makes this server re-read its certificate files (what certrotate runs over SSH)."""
        return f"kill -HUP $(head -1 {self.pid_path})"

    def reload(self) -> None:
        """SIGHUP by pid, locally: what `reload_command` does over SSH."""
        pid = self.pid
        if pid is None:
            raise CertRotateError(f"The lab {self.what} of {self.name} is not running; it cannot reload.")
        os.kill(pid, signal.SIGHUP)


def is_root() -> bool:
    return os.geteuid() == 0


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except FileNotFoundError:
        return False
    except OSError:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, 0)
            return True
        return False
    state = stat[stat.rfind(b")") + 2 :][:1]
    return state not in (b"Z", b"X")


def start_time(pid: int) -> int | None:
    """The kernel's start time of `pid` (clock ticks since boot): tells a pid from a later reuse of it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    return int(stat[stat.rfind(b")") + 2 :].split()[19])


def children_of(pid: int) -> list[int]:
    """Direct children of `pid`, found in /proc (sshd's per-connection processes leave its process group)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def descendants_of(pid: int) -> list[int]:
    result: list[int] = []
    queue = [pid]
    while queue:
        for child in children_of(queue.pop()):
            if child not in result:
                result.append(child)
                queue.append(child)
    return result


def read_pid_file(path: Path) -> int | None:
    """The pid on the first line of a pid file (sshd's and PostgreSQL's both start that way)."""
    try:
        first = Path(path).read_text().splitlines()[0].strip()
        return int(first)
    except (OSError, IndexError, ValueError):
        return None


def _reap(process: subprocess.Popen | None) -> None:
    if process is not None:
        with contextlib.suppress(Exception):
            process.poll()


def wait_gone(pid: int, timeout: float, process: subprocess.Popen | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(process)
        if process is not None and process.pid == pid and process.returncode is not None:
            return True
        if not pid_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _signal_wait_kill(pid: int, sig: int, timeout: float, process: subprocess.Popen | None) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
    if not wait_gone(pid, timeout, process):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 5.0, process)


def stop_pid(
    pid: int | None,
    *,
    first_signal: int = signal.SIGTERM,
    timeout: float = 10.0,
    process: subprocess.Popen | None = None,
    with_descendants: bool = False,
) -> None:
    """Stop one process by pid: `first_signal`, wait up to `timeout`, then SIGKILL. Idempotent.

    With `with_descendants`, the children (found before signalling) are stopped too —
    for sshd, whose per-connection children keep running when the listener dies.
    """
    if pid is None or pid <= 0:
        _reap(process)
        return
    family = [(child, start_time(child)) for child in descendants_of(pid)] if with_descendants else []
    _signal_wait_kill(pid, first_signal, timeout, process)
    # Only once the parent is gone: PostgreSQL's own children must be left to their
    # postmaster's shutdown, and sshd's per-connection children outlive the listener.
    for child, started in family:
        if pid_alive(child) and start_time(child) == started:
            _signal_wait_kill(child, signal.SIGTERM, 2.0, None)
    _reap(process)


def log_tail(path: Path, lines: int = 5) -> str:
    """The last lines of a server log, joined into one line for an error sentence."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return "(no log)"
    tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(tail) or "(empty log)"


def run_checked(argv: list[str], what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a short helper command (ssh-keygen, initdb, psql); a failure becomes one sentence."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)
    except FileNotFoundError:
        raise CertRotateError(f"{what} failed: {argv[0]} is not installed.") from None
    except subprocess.TimeoutExpired:
        raise CertRotateError(f"{what} failed: {argv[0]} did not finish within 120 s.") from None
    if result.returncode != 0:
        output = " | ".join(line.strip() for line in (result.stderr or result.stdout).splitlines()[-4:] if line.strip())
        raise CertRotateError(f"{what} failed (exit {result.returncode}): {output or 'no output'}.")
    return result
