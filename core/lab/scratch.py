"""Scratch directories for the lab's PostgreSQL data, on tmpfs when the machine has one.

Copying a 28 MB data dir takes ~1 s on a VM's disk and ~0.05 s on /dev/shm, which is most
of a lab's start-up time. Data on tmpfs lives in RAM, so it must not outlive its lab even
when the process dies by SIGKILL: each scratch dir holds an flock on its own `.lock` file
for as long as it is in use, and every new one first removes dirs whose lock nobody holds.

The same sweep stops servers a dead lab left running: a lab lists each server's pid file
in its scratch dir (`register_server`), and a stale dir's servers are stopped by the pid in
that file, after checking /proc/<pid>/cmdline still names the lab's own path (so a reused
pid is never touched). Sweeps in several processes at once (labs started side by side) take
turns on an flock of root/.<prefix>sweep.lock, so a sweep that returns has seen every stale dir
gone, including one another process was still removing.

Set CERTROTATE_LAB_SHM=0 to keep everything on disk.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Iterator

from core.lab.procs import pid_alive, read_pid_file, stop_pid

SHM = Path("/dev/shm")
SHM_ENV = "CERTROTATE_LAB_SHM"
LOCK_NAME = ".lock"
SERVERS_NAME = ".servers"
SWEEP_LOCK_SUFFIX = "sweep.lock"
MIN_FREE_BYTES = 1 << 30


def fast_root() -> Path | None:
    """/dev/shm when it is a writable tmpfs with room to spare and not disabled, else None."""
    if os.environ.get(SHM_ENV, "1").strip().lower() in ("0", "no", "false", "off"):
        return None
    try:
        if not os.access(SHM, os.W_OK | os.X_OK):
            return None
        usage = shutil.disk_usage(SHM)
    except OSError:
        return None
    return SHM if usage.free >= MIN_FREE_BYTES else None


class ScratchDir:
    """A 0755 temp dir (under `root`, default: tmpfs if available, else the system temp dir),
    locked while this object lives; `remove()` deletes it."""

    def __init__(self, prefix: str, root: Path | None = None) -> None:
        root = root or fast_root() or Path(tempfile.gettempdir())
        collect_stale(root, prefix)
        self.path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        os.chmod(self.path, 0o755)
        # Lock first, name the lock file after: a sweep in another process judges a dir by its
        # `.lock`, so it must never find one nobody holds yet and remove a dir being set up.
        pending = self.path / (LOCK_NAME + ".new")
        self._fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        os.rename(pending, self.path / LOCK_NAME)

    def register_server(self, pid_file: Path, cmdline_marker: str, stop_signal: int = signal.SIGTERM) -> None:
        """Remember a server of this lab, so a sweep can stop it if this process dies without doing so."""
        with open(self.path / SERVERS_NAME, "a") as handle:
            handle.write(f"{int(stop_signal)}\t{pid_file}\t{cmdline_marker}\n")

    def remove(self) -> None:
        if self._fd < 0:
            return
        shutil.rmtree(self.path, ignore_errors=True)
        os.close(self._fd)
        self._fd = -1

    def __repr__(self) -> str:
        return f"ScratchDir({self.path})"


def collect_stale(root: Path, prefix: str) -> None:
    """Remove `root/prefix*` dirs left by processes that died without cleaning up.

    A sweep another process has under way is waited for, so once this returns no dead lab's
    servers are left running, even when that other process was the one stopping them."""
    with _one_sweep_at_a_time(root, prefix):
        try:
            candidates = [p for p in root.iterdir() if p.name.startswith(prefix) and p.is_dir()]
        except OSError:
            return
        for candidate in candidates:
            _remove_if_stale(candidate)


@contextlib.contextmanager
def _one_sweep_at_a_time(root: Path, prefix: str) -> Iterator[None]:
    """An flock on root/.<prefix>sweep.lock for the length of a sweep (labs start side by side, say
    in parallel test workers). Where that file cannot be opened (another account's, in a sticky
    dir), the sweep goes ahead without waiting."""
    path = root / f".{prefix}{SWEEP_LOCK_SUFFIX}"
    try:
        try:
            fd = os.open(path, os.O_RDONLY)  # without O_CREAT: the kernel may refuse that on another's file
        except FileNotFoundError:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_if_stale(candidate: Path) -> None:
    """Stop the servers of `candidate` and remove it, if no living process holds its lock."""
    try:
        fd = os.open(candidate / LOCK_NAME, os.O_RDONLY)
    except OSError:
        return  # being created right now, or not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return
    try:
        _stop_orphans(candidate / SERVERS_NAME)
        shutil.rmtree(candidate, ignore_errors=True)
    finally:
        os.close(fd)


def _stop_orphans(servers_file: Path) -> None:
    try:
        entries = servers_file.read_text().splitlines()
    except OSError:
        return
    for entry in entries:
        try:
            sig, pid_file, marker = entry.split("\t", 2)
        except ValueError:
            continue
        pid = read_pid_file(Path(pid_file))
        if pid is None or not pid_alive(pid):
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            with contextlib.suppress(OSError):
                stop_pid(pid, first_signal=int(sig), timeout=10.0, with_descendants=True)
