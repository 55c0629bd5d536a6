"""Screenshots of installing a UI certificate, from the real app on a lab with consoles.

    .venv/bin/python screenshots/make_ui_certificate_screenshots.py [OUTPUT_DIR]

A lab whose nodes run the DB Console stand-in (core.lab.console), an organisational CA made
on the spot, a pair that misses one node's SAN (the checks refuse it), then a good pair
and its rollout. Uses the helpers of make_screenshots.py; every lab is stopped at the end.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.ui_support: the organisational CA

from make_screenshots import OUT, home, render_png, shown, snap, until  # noqa: E402

from core.lab import start_lab  # noqa: E402
from tests.ui_support import OrgCA, write_ui_files  # noqa: E402
from tui.app import CertRotateApp  # noqa: E402
from tui.screens.run_step import RunStepScreen  # noqa: E402
from tui.screens.start import StartScreen  # noqa: E402
from tui.screens.ui_cert import UiCertScreen  # noqa: E402

SIZE = (140, 45)


async def install_ui_certificate() -> None:
    with start_lab(None, 3, console=True) as lab:
        org = OrgCA()
        short = org.issue_ui([node.address for node in lab.nodes[:2]])
        write_ui_files(lab, org.chain_pem(short), short.key_pem())
        app = CertRotateApp(lab.state_path)
        async with app.run_test(size=SIZE) as pilot:
            await home(pilot)
            await pilot.press("s")
            await shown(pilot, StartScreen)
            await pilot.press("5")
            screen = await shown(pilot, UiCertScreen)
            await until(pilot, lambda: screen.checks_done >= 1, "the checks")
            await snap(pilot, "30-ui-certificate-san-missing")
            good = org.issue_ui([node.address for node in lab.nodes])
            write_ui_files(lab, org.chain_pem(good), good.key_pem(), in_inventory=False)
            await pilot.press("ctrl+r")
            await until(pilot, lambda: screen.checks_done >= 2 and screen.ready, "the checks to pass")
            await snap(pilot, "31-ui-certificate-checks-passed")
            await pilot.press("ctrl+s")
            run = await shown(pilot, RunStepScreen)
            await until(pilot, lambda: run.finished, "the rollout")
            await snap(pilot, "32-ui-certificate-installed")


async def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    await install_ui_certificate()
    render_png()


if __name__ == "__main__":
    asyncio.run(main())
