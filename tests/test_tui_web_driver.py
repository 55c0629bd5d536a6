"""The wizard under `textual serve`: Textual's WebDriver, spoken to the way textual-serve does.

textual-serve starts `python -m tui --state X` with TEXTUAL_DRIVER set to the WebDriver and
COLUMNS x ROWS (80x24), then talks packets over stdin/stdout: `M` + 4-byte big-endian length
+ JSON for meta (`resize`, `quit`), `D` + length + bytes for the screen. A browser that sizes
the page before the first frame once left the app spinning at 100% CPU, deaf to SIGTERM and
holding the state file's lock (see CertRotateApp.on_resize). No browser is needed to see it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.rotation_support import CERTROTATE

DEADLINE = 60.0  # a first frame on a machine shared with other test runs
EXIT_WITHIN = 20.0

INVENTORY = """[cluster]
name = "prod"

[[nodes]]
name = "n1"
ssh_host = "127.0.0.2"
ssh_port = 1
certs_dir = "/var/lib/cockroach/certs"

[[clients]]
user = "root"
"""
ESCAPE = re.compile(r"\x1b\[[0-9;?$]*[A-Za-z]")
CURSOR_TO = re.compile(r"\x1b\[(\d+);(\d+)H")


def meta(payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    return b"M" + len(body).to_bytes(4, "big") + body


class ServedWizard:
    """`python -m tui --state X` as textual-serve runs it; `screen` is everything drawn so far."""

    def __init__(self, state_path: Path) -> None:
        env = {**os.environ, "TEXTUAL_DRIVER": "textual.drivers.web_driver:WebDriver", "TEXTUAL_FPS": "60",
               "TEXTUAL_COLOR_SYSTEM": "truecolor", "TERM_PROGRAM": "textual", "COLUMNS": "80", "ROWS": "24"}
        self.process = subprocess.Popen([*CERTROTATE, "--state", str(state_path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        self.drawn = bytearray()
        self.metas: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        stream = self.process.stdout
        if stream.readline() != b"__GANGLION__\n":
            return
        while header := stream.read(5):
            body = stream.read(int.from_bytes(header[1:5], "big"))
            if header[:1] == b"D":
                self.drawn += body
            elif header[:1] == b"M":
                self.metas.append(json.loads(body))

    def send(self, payload: dict) -> None:
        self.process.stdin.write(meta(payload))
        self.process.stdin.flush()

    @property
    def screen(self) -> str:
        return bytes(self.drawn).decode(errors="replace")

    def text(self) -> str:
        return ESCAPE.sub("", self.screen)

    def wait_for_text(self, *words: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not all(word in self.text() for word in words):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never drew {words}; drew {len(self.drawn)} bytes")
            time.sleep(0.05)

    def wait_until_quiet(self, quiet: float = 0.3) -> None:
        """Until nothing more is drawn for `quiet` seconds: the wizard has shown all it had to."""
        deadline = time.monotonic() + DEADLINE
        seen, since = len(self.drawn), time.monotonic()
        while time.monotonic() - since < quiet:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the wizard never stopped drawing; drew {len(self.drawn)} bytes")
            time.sleep(0.05)
            if len(self.drawn) != seen:
                seen, since = len(self.drawn), time.monotonic()

    def rows_drawn(self) -> set[int]:
        return {int(row) for row, _ in CURSOR_TO.findall(self.screen)}

    def wait_exit(self) -> int:
        try:
            return self.process.wait(EXIT_WITHIN)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the served wizard did not exit within {EXIT_WITHIN:.0f} s") from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            stream.close()


def advance(state_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*CERTROTATE, "advance", "--state", str(state_path)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def state_path(tmp_path) -> Path:
    """A cluster whose one node refuses SSH at once (nothing listens on 127.0.0.2:1)."""
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY)
    return path


def test_a_later_resize_is_still_followed(state_path):
    wizard = ServedWizard(state_path)
    try:
        wizard.send({"type": "resize", "width": 140, "height": 45})
        wizard.wait_for_text("Trust new CA", "Hosts")
        wizard.wait_for_text("refused the SSH connection")  # the host refresh is done (n1 refuses at once)
        wizard.wait_until_quiet()
        wizard.drawn.clear()
        wizard.send({"type": "resize", "width": 100, "height": 30})
        wizard.wait_for_text("Trust new CA", "Hosts")
        assert max(wizard.rows_drawn()) == 30
        wizard.send({"type": "quit"})
        assert wizard.wait_exit() == 0
    finally:
        wizard.close()


@pytest.mark.parametrize("stop", ["quit", "SIGTERM"])
def test_a_resize_before_the_first_frame_renders_at_the_new_size_and_quits(state_path, stop):
    wizard = ServedWizard(state_path)
    try:
        wizard.send({"type": "resize", "width": 140, "height": 45})
        wizard.wait_for_text("Trust new CA", "Hosts")
        assert max(wizard.rows_drawn()) == 45  # the footer on the browser's last row, not row 24
        assert advance(state_path).returncode == 3  # the wizard holds the lock while it is open
        if stop == "quit":
            wizard.send({"type": "quit"})
        else:
            wizard.process.send_signal(signal.SIGTERM)
        assert wizard.wait_exit() == 0
        assert {"type": "exit"} in wizard.metas
    finally:
        wizard.close()
    after = advance(state_path)
    assert after.returncode == 0, after.stderr
    assert "no rotation in flight" in after.stdout


def test_the_first_run_forms_survive_an_early_resize_too(tmp_path):
    path = tmp_path / "certrotate.toml"
    wizard = ServedWizard(path)
    try:
        wizard.send({"type": "resize", "width": 140, "height": 45})
        wizard.wait_for_text("New cluster", "Add node")
        wizard.send({"type": "quit"})
        assert wizard.wait_exit() == 0
    finally:
        wizard.close()
    assert not path.exists()
    assert advance(path).returncode != 3
