"""The wizard in a real browser: `textual serve` on loopback, driven by Debian's headless Chromium.

The page draws the terminal on a canvas, so the test reads what the browser received over
its websocket (the screen's bytes, escape sequences stripped), types through the page like
an operator, then closes the page: the app must quit and let go of the state file's lock.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.config import state as state_mod

CHROMIUM = Path("/usr/bin/chromium")
TEXTUAL = Path(sys.executable).with_name("textual")
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
ESCAPES = re.compile(r"\x1b\[[0-9;?<>=$]*[A-Za-z~]|\x1b[()][A-Z0-9]|\x1b[=>78]")
DEADLINE = 60.0

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium (make system-deps installs it)")

INVENTORY = """[cluster]
name = "prod"

[[nodes]]
name = "n1"
ssh_host = "127.0.0.2"
ssh_port = 1
certs_dir = "/var/lib/cockroach/certs"

[[nodes]]
name = "n2"
ssh_host = "127.0.0.3"
ssh_port = 1
certs_dir = "/var/lib/cockroach/certs"
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (textual serve runs the wizard through a shell)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(") ", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return False


def lock_is_free(state_path: Path) -> bool:
    try:
        with state_mod.locked(state_path):
            return True
    except state_mod.LockHeld:
        return False


class Screen:
    """What the browser received over the wizard's websocket, as text."""

    def __init__(self, page) -> None:
        self.frames: list[str] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._received))

    def _received(self, frame) -> None:
        self.frames.append(frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame)

    def text(self) -> str:
        return ESCAPES.sub("", "".join(self.frames))


def wait_until(page, condition, what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        page.wait_for_timeout(100)  # lets Playwright deliver the websocket frames


@pytest.fixture
def served(tmp_path):
    state_path = tmp_path / "certrotate.toml"
    state_path.write_text(INVENTORY)
    port = free_port()
    command = f"{sys.executable} -m tui --state {state_path}"
    server = subprocess.Popen([str(TEXTUAL), "serve", "--host", "127.0.0.1", "--port", str(port), "-c", command],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "TEXTUAL_DRIVER": ""})
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise AssertionError("textual serve did not start listening")
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/", state_path, server
    for pid in descendants(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    server.terminate()
    server.wait(timeout=20)


def test_the_wizard_in_headless_chromium_shows_the_cluster_takes_keys_and_quits_when_the_page_closes(served, tmp_path):
    from playwright.sync_api import sync_playwright

    url, state_path, server = served
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 900})
        try:
            page = browser.new_page()
            screen = Screen(page)
            page.goto(url)
            wait_until(page, lambda: "Cluster prod" in screen.text(), "the overview in the browser")
            wait_until(page, lambda: all(name in screen.text() for name in ("n1", "n2")), "the nodes")
            wizard = [pid for pid in descendants(server.pid) if b"-m\0tui" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert wizard, "the wizard runs under textual serve"
            assert not lock_is_free(state_path), "the served wizard holds the state file's lock"

            page.locator(".xterm-helper-textarea").focus()
            page.keyboard.press("?")
            wait_until(page, lambda: "certrotate — help" in screen.text(), "the help screen after pressing ?")

            page.close()
            deadline = time.monotonic() + 30
            while any(alive(pid) for pid in wizard) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not any(alive(pid) for pid in wizard), "closing the page quits the wizard"
            assert lock_is_free(state_path)
        finally:
            browser.close()
