"""Each `certrotate` process imports only what its subcommand runs (tui/cli.py says how).

An operator's trust rollout is two processes, `start ca` then `advance`, and each used to
spend a fifth of a second importing every subcommand's machinery. These tests run the real
processes on a real lab and ask each, from inside, which modules it loaded.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import state as state_mod

REPO = Path(__file__).resolve().parent.parent

# The real command line in a process of its own; its last line of stdout lists the modules it loaded.
LOADED = """
import json, sys
from tui import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""
SSH_STACK = ("paramiko", "core.remote.ssh", "core.remote.remote_files")
NOT_FOR_ADVANCE = ("core.diagnose", "core.autopilot", "core.tools")


def run_cli(*args: str) -> tuple[int, list[str], str]:
    """(exit code, modules loaded, what the command printed) of one real `certrotate ARGS` process."""
    result = subprocess.run([sys.executable, "-c", LOADED, *args], capture_output=True, text=True, cwd=REPO,
                            timeout=180)
    assert result.returncode == 0, result.stderr
    *printed, last = result.stdout.splitlines()
    report = json.loads(last)
    return report["code"], report["modules"], "\n".join(printed) + result.stderr


def loaded(modules: list[str], packages: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in packages)]


def test_start_ca_opens_the_rotation_without_the_ssh_stack_and_advance_without_the_other_commands(lab):
    code, modules, printed = run_cli("start", "ca", "--state", str(lab.state_path))
    assert code == 0, printed
    assert "started CA rotation" in printed
    assert state_mod.load(lab.state_path).phase == "trust"
    assert loaded(modules, SSH_STACK) == []
    assert loaded(modules, NOT_FOR_ADVANCE) == []

    code, modules, printed = run_cli("advance", "--state", str(lab.state_path))
    assert code == 0, printed
    assert state_mod.load(lab.state_path).phase == "wait"  # the trust step ran on every node over SSH
    assert "paramiko" in modules
    assert loaded(modules, NOT_FOR_ADVANCE) == []
    assert "core.rotation.deliveries.kubernetes" not in modules  # an SSH cluster's run loads no Kubernetes code


@pytest.mark.parametrize(("kind", "title"), [("nodes", "node certificates only"),
                                              ("clients", "client certificates only")])
def test_starting_a_leaf_rotation_loads_no_ssh_stack(lab, kind, title):
    code, modules, printed = run_cli("start", kind, "--state", str(lab.state_path))
    assert code == 0, printed
    assert f"started {title}" in printed
    assert state_mod.load(lab.state_path).phase == "leaf"
    assert loaded(modules, SSH_STACK) == []


def test_the_full_parser_loads_no_subcommand_machinery():
    """`certrotate --help` (and every subcommand's parsing) builds the parser from plain data only."""
    code = ("import sys, json; from tui.cli import build_parser; build_parser(); "
            "print(json.dumps(sorted(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    modules = json.loads(result.stdout)
    heavy = ("paramiko", "cryptography", "core.remote", "core.rotation.engine", "core.rotation.opening",
             "core.signers", "core.config.state", *NOT_FOR_ADVANCE)
    assert loaded(modules, heavy) == []
