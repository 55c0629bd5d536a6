"""Screenshots of every main step of the wizard, taken from the real app driving a real lab cluster.

    .venv/bin/python screenshots/make_screenshots.py [OUTPUT_DIR]

Starts lab clusters on loopback (core.lab: sshd + PostgreSQL per node), walks the wizard
through a whole CA rotation and the side flows (host-key question, failed node, rollback,
inspector, help, command palette, first-run editing, doctor, OCSP modes) with Textual's Pilot, and saves one SVG per step
(`app.save_screenshot`). When cairosvg is installed, each SVG is also rendered to PNG
(install Debian's fonts-firacode for the right glyphs). Every lab is stopped at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path
from typing import Callable

from textual.pilot import Pilot
from textual.widgets import Input

from core import pki
from core.config import state as state_mod
from core.lab import start_lab
from core.rotation import engine
from tui.app import CertRotateApp
from tui.screens.cert_inspector import CertInspectorScreen
from tui.screens.confirm_gate import ConfirmGateScreen
from tui.screens.doctor import DoctorScreen
from tui.screens.dry_run import DryRunScreen
from tui.screens.first_run import FirstRunScreen
from tui.screens.home import HomeScreen
from tui.screens.host_key import HostKeyScreen
from tui.screens.ocsp import OcspScreen
from tui.screens.rollback import RollbackScreen
from tui.screens.run_step import RunStepScreen
from tui.screens.start import StartScreen
from tui.widgets.cert_view import CertView

SIZE = (140, 45)
OUT = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
saved: list[Path] = []


async def until(pilot: Pilot, condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"make_screenshots: timed out waiting for {what}")
        await pilot.pause(0.02)


async def shown(pilot: Pilot, screen_type: type):
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, screen_type) and app.screen.is_mounted
                and bool(app.screen.children), screen_type.__name__)
    await pilot.pause()
    return app.screen


async def snap(pilot: Pilot, name: str) -> None:
    await pilot.pause()
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False  # a blinking cursor would make every run's picture differ
    await pilot.pause()
    path = OUT / f"{name}.svg"
    pilot.app.save_screenshot(path.name, str(OUT))
    saved.append(path)
    print(f"saved {path}", flush=True)


async def home(pilot: Pilot) -> HomeScreen:
    screen = await shown(pilot, HomeScreen)
    await until(pilot, lambda: screen.refreshes >= 1, "the host refresh")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    return screen


async def run_step(pilot: Pilot, name: str | None) -> RunStepScreen:
    from tui.screens.dry_run import DryRunScreen

    await pilot.press("n")  # the plan of the step first; Enter on it runs
    preview = await shown(pilot, DryRunScreen)
    await until(pilot, lambda: preview.ready, "the plan of the step")
    await pilot.press("enter")
    run = await shown(pilot, RunStepScreen)
    await until(pilot, lambda: run.finished, "the step to finish")
    if name:
        await snap(pilot, name)
    return run


async def back(pilot: Pilot, name: str | None = None) -> HomeScreen:
    refreshes = pilot.app.screen_stack[0].refreshes if isinstance(pilot.app.screen_stack[0], HomeScreen) else 0
    await pilot.press("escape")
    screen = await shown(pilot, HomeScreen)
    await until(pilot, lambda: screen.refreshes > refreshes, "the host refresh")
    await pilot.app.workers.wait_for_complete()
    if name:
        await snap(pilot, name)
    return screen


async def confirm(pilot: Pilot, name: str | None = None) -> None:
    await pilot.press("c")
    await shown(pilot, ConfirmGateScreen)
    await pilot.press("a")
    if name:
        await snap(pilot, name)
    await pilot.press("ctrl+s")
    await shown(pilot, HomeScreen)
    await pilot.app.workers.wait_for_complete()


def lab_like_demo():
    lab = start_lab(None, 3, ssh_clients=("app",))
    state = state_mod.load(lab.state_path)
    cluster = dataclasses.replace(state.inventory.cluster, verify_timeout_seconds=5)
    state.inventory = dataclasses.replace(state.inventory, cluster=cluster)
    state_mod.save(state)
    return lab


async def whole_rotation() -> None:
    with lab_like_demo() as lab:
        note = "Demo cluster on loopback; quitting stops it. Press t while the rotation waits to time travel."
        app = CertRotateApp(lab.state_path, demo=True, demo_note=note)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await snap(pilot, "01-home-idle")
            await pilot.press("s")
            await shown(pilot, StartScreen)
            await snap(pilot, "02-start-rotation")
            await pilot.click("#start-ca")
            await until(pilot, lambda: app.state.phase == "trust", "the rotation to start")
            await app.workers.wait_for_complete()
            await snap(pilot, "03-home-trust-ready")
            await pilot.press("p")
            preview = await shown(pilot, DryRunScreen)
            await until(pilot, lambda: preview.plan is not None or bool(preview.error), "the plan")
            await snap(pilot, "04-preview-trust")
            await pilot.press("enter")
            run = await shown(pilot, RunStepScreen)
            await until(pilot, lambda: run.finished, "the trust step")
            await snap(pilot, "05-run-trust")
            await back(pilot, "06-home-wait")
            await pilot.press("t")
            await pilot.pause()
            await snap(pilot, "07-home-time-travel")
            await run_step(pilot, "08-run-stops-for-confirmation")
            await back(pilot, "09-home-confirmation-needed")
            await confirm(pilot, "10-checklist")
            await run_step(pilot, "11-run-leaf")
            await back(pilot, "12-home-retire")
            await confirm(pilot)
            await run_step(pilot, "13-run-retire-finished")
            await back(pilot, "14-home-idle-after-rotation")
            await pilot.press("i")
            inspector = await shown(pilot, CertInspectorScreen)
            view = inspector.query_one(CertView)
            await until(pilot, lambda: bool(view.certificates), "the served certificate")
            await snap(pilot, "15-inspector-served-certificate")
            await pilot.press("escape")
            await shown(pilot, HomeScreen)
            await pilot.press("question_mark")
            await pilot.pause()
            await snap(pilot, "16-help")
            await pilot.press("escape")
            await pilot.press("ctrl+p")
            await pilot.pause(0.3)
            await snap(pilot, "17-command-palette")


async def host_key_question() -> None:
    with start_lab(None, 3, ssh_clients=("app",)) as lab:
        node = lab.nodes[1]
        name = f"[{node.address}]:{node.ssh_port}".encode()
        lab.known_hosts.write_bytes(b"".join(
            line for line in lab.known_hosts.read_bytes().splitlines(keepends=True) if not line.startswith(name)))
        app = CertRotateApp(lab.state_path)
        async with app.run_test(size=SIZE) as pilot:
            await shown(pilot, HostKeyScreen)
            await snap(pilot, "18-host-key-question")
            await pilot.click("#trust-key")
            await home(pilot)


async def failed_node_and_rollback() -> None:
    with lab_like_demo() as lab:
        state = state_mod.load(lab.state_path)
        engine.start(state, "ca")
        state_mod.save(state)
        app = CertRotateApp(lab.state_path, demo=True)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await run_step(pilot, None)  # trust, pictured above
            await back(pilot)
            state = state_mod.load(lab.state_path)
            engine.confirm(state, ["root"])
            nodes = tuple(dataclasses.replace(n, reload="true") if n.name == "n1" else n for n in state.inventory.nodes)
            state.inventory = dataclasses.replace(state.inventory, nodes=nodes)
            state_mod.save(state)
            app.state = state_mod.load(lab.state_path)
            await pilot.press("t")
            await run_step(pilot, "19-run-leaf-node-failed")
            await back(pilot, "20-home-after-failure")
            await pilot.press("b")
            await shown(pilot, RollbackScreen)
            await snap(pilot, "21-rollback-question")
            await pilot.click("#rollback-yes")
            run = await shown(pilot, RunStepScreen)
            await until(pilot, lambda: run.finished, "the rollback")
            await snap(pilot, "22-rollback-done")


async def first_run_doctor_ocsp() -> None:
    """First run with an added node back in its form; doctor on a node that did not reload; OCSP modes."""
    with start_lab(None, 3, ssh_clients=("app",)) as lab:
        (lab.workdir / "new-cluster").mkdir()
        app = CertRotateApp(lab.workdir / "new-cluster" / "certrotate.toml")
        async with app.run_test(size=SIZE) as pilot:
            screen = await shown(pilot, FirstRunScreen)
            values = {"cluster-name": "prod", "node-ssh-host": "10.0.0.1", "node-certs-dir": "/var/lib/cockroach/certs",
                      "node-sql-addr": "10.0.0.1:26257", "node-addresses": "n1.example.com, 10.0.0.1"}
            for name, host in (("n1", "10.0.0.1"), ("n2", "10.0.0.2")):
                for field_id, value in {**values, "node-name": name, "node-ssh-host": host,
                                         "node-sql-addr": f"{host}:26257"}.items():
                    screen.query_one(f"#{field_id}", Input).value = value
                await pilot.press("ctrl+n")
            table = screen.query_one("#node-list")
            table.focus()
            table.move_cursor(row=0)
            await pilot.press("enter")
            screen.query_one("#add-node").scroll_visible(animate=False, top=False)
            await snap(pilot, "23-first-run-edit-node")

        lab.nodes[1].install_node_cert(pki.issue_node(lab.ca, lab.nodes[1].addresses))  # written, not reloaded
        state = state_mod.load(lab.state_path)
        cluster = dataclasses.replace(state.inventory.cluster, ocsp_url="http://ocsp.example.test/")
        state.inventory = dataclasses.replace(state.inventory, cluster=cluster)
        state_mod.save(state)
        app = CertRotateApp(lab.state_path)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await pilot.press("d")
            doctor = await shown(pilot, DoctorScreen)
            await until(pilot, lambda: doctor.diagnosed >= 1, "the doctor on n1")
            doctor.query_one("#doctor-target").value = "node:n2"
            await until(pilot, lambda: doctor.diagnosed >= 2 and any(f.check == "on-disk" for f in doctor.findings),
                        "the doctor on n2")
            await app.workers.wait_for_complete()
            await snap(pilot, "24-doctor-reload-pending")
            await pilot.press("escape")
            await home(pilot)
            await pilot.press("s")
            await shown(pilot, OcspScreen)
            await pilot.click("#ocsp-strict")
            await snap(pilot, "25-ocsp-modes")


def render_png() -> None:
    try:
        import cairosvg
    except ImportError:
        print("cairosvg is not installed: SVG only (pip install cairosvg; apt install fonts-firacode).")
        return
    for svg in saved:
        cairosvg.svg2png(url=str(svg), write_to=str(svg.with_suffix(".png")))
        print(f"rendered {svg.with_suffix('.png')}", flush=True)


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    await whole_rotation()
    await host_key_question()
    await failed_node_and_rollback()
    await first_run_doctor_ocsp()
    render_png()


if __name__ == "__main__":
    asyncio.run(main())
