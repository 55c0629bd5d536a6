"""Start-up time of the wizard to its first screen, against a minimal Textual app.

    .venv/bin/python bench/bench_startup.py [--runs N]

Each sample is a fresh process (imports included, as an operator experiences it): the
time from spawning it to the first frame Textual renders of the screen the user sees (the
minimal app's own screen; the wizard's overview, which it pushes on mount), headless at
140x45. The frame is caught where the compositor hands it to the display, so it is fully
laid out and rendered. The wizard is imported as the `certrotate` command imports it:
`tui.cli` (the console script's module), then the app. It opens on a state file of three
nodes on a closed loopback port, so its host refresh, which starts once the overview is
painted, fails fast and costs the first frame nothing.
Target: the wizard's median within 1.3x the minimal app's.
Both run with their bytecode cache, as installed (PYTHONDONTWRITEBYTECODE is dropped for them).
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TARGET = 1.3

STATE = """\
[cluster]
name = "bench"
profile = "cockroach"

{nodes}
[[clients]]
user = "root"
"""
NODE = """\
[[nodes]]
name = "n{i}"
ssh_host = "127.0.0.1"
ssh_port = 9
certs_dir = "/var/lib/cockroach/certs"
sql_addr = "127.0.0.1:9"

"""

READY = """
import sys, time
from textual.app import App

def first_frame_of(screen_class: str):
    \"\"\"Print READY at the first frame rendered of a `screen_class` screen, then exit.\"\"\"
    display = App._display

    def _display(app, screen, renderable):
        display(app, screen, renderable)
        if renderable is not None and type(screen).__name__ == screen_class:
            if not getattr(app, "_bench_ready", False):
                app._bench_ready = True
                print("READY", time.time(), flush=True)
                app.exit()
    App._display = _display
"""

WIZARD = READY + """
first_frame_of("HomeScreen")
import tui.cli  # what the `certrotate` command imports before it opens the wizard
from tui.app import CertRotateApp
CertRotateApp(sys.argv[1]).run(headless=True, size=(140, 45))
"""

MINIMAL = READY + """
first_frame_of("Screen")
from textual.widgets import Footer, Header, Static

class Minimal(App):
    def compose(self):
        yield Header()
        yield Static("hello")
        yield Footer()

Minimal().run(headless=True, size=(140, 45))
"""


def sample(code: str, state: Path) -> float:
    started = time.time()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    child = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), str(state)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=state.parent)
    try:
        for line in child.stdout:
            if line.startswith("READY"):
                return float(line.split()[1]) - started
        raise SystemExit(f"bench_startup: the app never got ready (exit {child.wait()})")
    finally:
        if child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
        child.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="certrotate-bench-") as tmp:
        state = Path(tmp) / "certrotate.toml"
        state.write_text(STATE.format(nodes="".join(NODE.format(i=i) for i in range(1, 4))))
        sample(MINIMAL, state)  # warm the file cache for both
        sample(WIZARD, state)
        minimal, wizard = [], []
        for _ in range(args.runs):
            minimal.append(sample(MINIMAL, state))
            wizard.append(sample(WIZARD, state))
    m, w = statistics.median(minimal), statistics.median(wizard)
    print(f"minimal Textual app: median {m * 1000:.0f} ms (min {min(minimal) * 1000:.0f} ms) over {args.runs} runs")
    print(f"certrotate wizard:   median {w * 1000:.0f} ms (min {min(wizard) * 1000:.0f} ms) over {args.runs} runs")
    load = os.getloadavg()
    print(f"ratio {w / m:.2f}x (target <= {TARGET}x): {'OK' if w / m <= TARGET else 'OVER'}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0 if w / m <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
