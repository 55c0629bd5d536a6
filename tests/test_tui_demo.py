"""`certrotate demo` opens the wizard on a real loopback cluster and stops that cluster when it ends."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

CERTROTATE = Path(sys.executable).with_name("certrotate")


class DemoInATerminal:
    """`certrotate demo --nodes 1` on a pseudo-terminal of 140x45, read as a user's terminal would show it."""

    def __init__(self) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: become the demo
            os.environ["TERM"] = "xterm-256color"
            os.execv(str(CERTROTATE), ["certrotate", "demo", "--nodes", "1"])
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 140, 0, 0))
        self.output = b""

    def read_until(self, pattern: bytes, timeout: float = 60) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.output)
            if match:
                return match
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    break
        raise AssertionError(f"the demo never showed {pattern!r}; it showed {self.output[-500:]!r}")

    def wait(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    self.output += os.read(self.fd, 65536)
                except OSError:
                    pass
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("the demo did not exit")

    def close(self) -> None:
        os.close(self.fd)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def lab_pids(workdir: Path) -> list[int]:
    node = workdir / "nodes" / "n1"
    pid_files = [node / "sshd" / "sshd.pid", node / "pg" / "data" / "postmaster.pid",
                 workdir / "clients" / "app" / "sshd" / "sshd.pid"]
    return [int(path.read_text().split()[0]) for path in pid_files]


@pytest.fixture
def demo():
    terminal = DemoInATerminal()
    yield terminal
    if alive(terminal.pid):
        os.kill(terminal.pid, signal.SIGKILL)
        terminal.wait()
    terminal.close()


def started(demo: DemoInATerminal) -> tuple[Path, list[int]]:
    state = Path(demo.read_until(rb"state file (\S+certrotate\.toml)").group(1).decode())
    demo.read_until(rb"Cluster lab-")
    workdir = state.parent.parent
    return workdir, lab_pids(workdir)


def test_the_demo_opens_the_wizard_and_quitting_stops_the_cluster(demo):
    workdir, pids = started(demo)
    assert all(alive(pid) for pid in pids)
    demo.read_until(rb"Start")
    os.write(demo.fd, b"q")
    assert demo.wait() == 0
    assert not any(alive(pid) for pid in pids)
    assert not workdir.exists()


def test_sigterm_stops_the_demo_cluster_too(demo):
    workdir, pids = started(demo)
    os.kill(demo.pid, signal.SIGTERM)
    assert demo.wait() == 128 + signal.SIGTERM
    assert not any(alive(pid) for pid in pids)
    assert b"cluster stopped" in demo.output


def test_sigint_stops_the_demo_cluster_too(demo):
    workdir, pids = started(demo)
    os.kill(demo.pid, signal.SIGINT)
    assert demo.wait() == 128 + signal.SIGINT
    assert not any(alive(pid) for pid in pids)
    assert b"cluster stopped" in demo.output and not workdir.exists()


def scratch_dirs_of(workdir: Path) -> list[Path]:
    """The lab's scratch dirs (PostgreSQL data, on /dev/shm when it can): those whose server list names `workdir`."""
    found = []
    for root in (Path("/dev/shm"), Path(tempfile.gettempdir())):
        for candidate in root.glob("certrotate-lab-*"):
            servers = candidate / ".servers"
            with contextlib.suppress(OSError):
                if str(workdir) in servers.read_text():
                    found.append(candidate)
    return found


def test_a_demo_killed_with_sigkill_is_cleaned_up_by_the_next_demo(demo):
    workdir, pids = started(demo)
    scratch = scratch_dirs_of(workdir)
    assert scratch and all(alive(pid) for pid in pids)
    os.kill(demo.pid, signal.SIGKILL)
    assert demo.wait() == -signal.SIGKILL
    assert all(alive(pid) for pid in pids), "SIGKILL leaves the servers behind; the next demo must stop them"

    second = DemoInATerminal()
    try:
        started(second)
        assert not any(alive(pid) for pid in pids)
        assert not workdir.exists() and not any(path.exists() for path in scratch)
        second.read_until(rb"Start")
        os.write(second.fd, b"q")
        assert second.wait() == 0
    finally:
        if alive(second.pid):
            os.kill(second.pid, signal.SIGKILL)
            second.wait()
        second.close()


def test_the_demo_without_a_terminal_says_so_and_starts_nothing():
    import subprocess

    result = subprocess.run([str(CERTROTATE), "demo", "--nodes", "1"], stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "needs a terminal" in result.stderr
    assert "starting" not in result.stderr
