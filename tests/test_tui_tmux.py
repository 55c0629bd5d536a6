"""The wizard in a real terminal (tmux, 140×45): what an operator sees, the lock it holds, a clean quit."""

import re
import shutil
import subprocess
import time

import pytest

from tests.rotation_support import CERTROTATE

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def capture(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], capture_output=True, text=True).stdout


def wait_for(session: str, condition, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = capture(session)
        if condition(screen):
            return screen
        time.sleep(0.1)
    raise AssertionError(f"the terminal never showed what was expected:\n{screen}")


def test_wizard_in_tmux_shows_the_cluster_holds_the_lock_and_quits_cleanly(lab):
    session = "certrotate-test-" + lab.block.replace(".", "-")
    command = " ".join([*CERTROTATE, "--state", str(lab.state_path)]) + "; echo EXITED:$?; sleep 60"
    # Start a shell first and size the window before the wizard starts: tmux takes the size of
    # the client that started its server unless told, and pytest runs without a terminal.
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "140", "-y", "45"], check=True)
    subprocess.run(["tmux", "resize-window", "-t", session, "-x", "140", "-y", "45"], check=True)
    subprocess.run(["tmux", "send-keys", "-t", session, command, "Enter"], check=True)
    try:
        screen = wait_for(session, lambda s: all(n.name in s for n in lab.nodes) and "Reachable" in s)
        cluster = lab.state_path.read_text().split('name = "', 1)[1].split('"', 1)[0]
        assert cluster in screen
        second = subprocess.run([*CERTROTATE, "advance", "--state", str(lab.state_path)], capture_output=True, text=True)
        assert second.returncode == 3 and "open in the certrotate wizard" in second.stderr
        subprocess.run(["tmux", "send-keys", "-t", session, "C-q"], check=True)
        screen = wait_for(session, lambda s: re.search(r"EXITED:\d", s) is not None)
        assert "EXITED:0" in screen and "Traceback" not in screen
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True)
