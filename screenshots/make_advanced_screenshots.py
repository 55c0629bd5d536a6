"""Screenshots of the advanced setups, from the real app: client CA, regions, Kubernetes, Cloud.

    .venv/bin/python screenshots/make_advanced_screenshots.py [OUTPUT_DIR]

- 40/41: a lab with split node certificates and a client CA; the start screen offers
  "Rotate the client CA", and its trust step puts the new client CA in every ca-client.crt.
- 42: a lab of four nodes in two regions; the trust step reports one line per region.
- 43: a Kubernetes-delivered cluster (a state file only, no cluster needed, as in
  tests/test_tui_kubernetes.py); the region's gate shows its manifest and kubectl commands.
- 44: the Cloud client CA screen (command palette) on a directory of two client CAs.
- 45-47: a lab whose CA and every leaf expired 12 hours ago: the overview says the cluster is
  down and leads to recovery (45), the recovery started and explained before it runs (46), and
  every node back at once (47).

Uses the helpers of make_screenshots.py; every lab is stopped at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.*: inventory edits, a Kubernetes cluster

from make_screenshots import OUT, back, home, render_png, run_step, shown, snap, until  # noqa: E402

from core.lab import start_lab  # noqa: E402
from tests.kubernetes_support import write_cluster  # noqa: E402
from tests.rotation_support import edit_inventory  # noqa: E402
from tui.app import CertRotateApp  # noqa: E402
from tui.cli import main as certrotate  # noqa: E402
from tui.screens.cloud_client_ca import DEFAULT_DIR, CloudClientCaScreen  # noqa: E402
from tui.screens.confirm_gate import ConfirmGateScreen  # noqa: E402
from tui.screens.start import StartScreen  # noqa: E402

SIZE = (140, 45)


def quick_verify(data: dict) -> None:
    data["cluster"]["verify_timeout_seconds"] = 5


async def start(pilot, button: str) -> None:
    """From the home screen: s, then the start screen's `button`; wait until phase trust."""
    await pilot.press("s")
    await shown(pilot, StartScreen)
    await pilot.click(button)
    await until(pilot, lambda: pilot.app.state.phase == "trust", "the rotation to start")
    await pilot.app.workers.wait_for_complete()


async def client_ca_rotation() -> None:
    with start_lab(None, 3, node_cert_layout="split", client_ca=True) as lab:
        edit_inventory(lab, quick_verify)
        app = CertRotateApp(lab.state_path)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await pilot.press("s")
            start_screen = await shown(pilot, StartScreen)
            start_screen.query_one("#start-client-ca").focus()  # highlighted: the choice this picture is about
            await snap(pilot, "40-client-ca-start")
            await pilot.click("#start-client-ca")
            await until(pilot, lambda: app.state.phase == "trust", "the client CA rotation to start")
            await app.workers.wait_for_complete()
            run = await run_step(pilot, None)
            if run.error:
                raise SystemExit(f"make_advanced_screenshots: the client CA trust step failed: {run.error}")
            await snap(pilot, "41-client-ca-trust")


async def regions() -> None:
    def two_regions(data: dict) -> None:
        for node, region in zip(data["nodes"], ("east", "west", "east", "west")):
            node["region"] = region
        quick_verify(data)

    with start_lab(None, 4, clients=("root",)) as lab:
        edit_inventory(lab, two_regions)
        app = CertRotateApp(lab.state_path)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await start(pilot, "#start-ca")
            run = await run_step(pilot, None)
            if run.error:
                raise SystemExit(f"make_advanced_screenshots: the regional trust step failed: {run.error}")
            await snap(pilot, "42-regions-trust")


async def kubernetes_gate() -> None:
    with tempfile.TemporaryDirectory(prefix="certrotate-k8s-") as directory:
        app = CertRotateApp(write_cluster(Path(directory)))
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await start(pilot, "#start-ca")
            await run_step(pilot, None)                          # writes region eu's manifest and stops
            await back(pilot)
            await pilot.press("c")
            gate = await shown(pilot, ConfirmGateScreen)
            if "kubectl" not in gate.commands or "PRIVATE KEY" in pilot.app.export_screenshot():
                raise SystemExit("make_advanced_screenshots: the Kubernetes gate is not what the caption says")
            await snap(pilot, "43-kubernetes-gate")


async def cloud_client_ca() -> None:
    with tempfile.TemporaryDirectory(prefix="certrotate-cloud-") as directory:
        state_path = write_cluster(Path(directory))             # any state file: the screen reads a directory beside it
        ca_dir = state_path.parent / DEFAULT_DIR
        for _ in range(2):                                      # a transition: the new CA first, the old one kept
            with contextlib.redirect_stdout(io.StringIO()):
                if certrotate(["cloud", "client-ca", "--dir", str(ca_dir), "--key-type", "ecdsa-p256"]) != 0:
                    raise SystemExit("make_advanced_screenshots: certrotate cloud client-ca failed")
        app = CertRotateApp(state_path)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await pilot.press("ctrl+p")
            await pilot.press(*["space" if c == " " else c for c in "Cloud client CA"])
            await pilot.pause(0.3)
            await pilot.press("enter")
            screen = await shown(pilot, CloudClientCaScreen)
            table = screen.query_one("#client-ca-table")
            await until(pilot, lambda: table.row_count == 2, "both client CAs listed")
            field = screen.query_one("#client-ca-cluster")
            field.value = "9f3c2a1b-prod"
            field.focus()
            await pilot.press("enter")
            upload = screen.query_one("#client-ca-upload")
            await until(pilot, lambda: "/clusters/9f3c2a1b-prod/" in str(upload.render()),
                        "the cluster ID in the upload command")
            table.focus()                                       # no selected text in the cluster ID field
            await snap(pilot, "44-cloud-client-ca")


async def expired_cluster_recovery() -> None:
    import datetime as dt

    from core import pki

    now = pki.utcnow()
    with start_lab(None, 3, issued_at=now - dt.timedelta(days=2), ca_lifetime=dt.timedelta(hours=36)) as lab:
        edit_inventory(lab, quick_verify)
        app = CertRotateApp(lab.state_path)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await app.workers.wait_for_complete()
            await snap(pilot, "45-recovery-overview")
            await pilot.press("s")
            await shown(pilot, StartScreen)
            await pilot.press("7")
            await until(pilot, lambda: app.state.phase == "leaf", "the recovery to start")
            await app.workers.wait_for_complete()
            await snap(pilot, "46-recovery-explained")
            run = await run_step(pilot, None)
            if run.error:
                raise SystemExit(f"make_advanced_screenshots: the recovery failed: {run.error}")
            await snap(pilot, "47-recovery-every-node-back")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    await expired_cluster_recovery()
    await client_ca_rotation()
    await regions()
    await kubernetes_gate()
    await cloud_client_ca()
    render_png()


if __name__ == "__main__":
    asyncio.run(main())
