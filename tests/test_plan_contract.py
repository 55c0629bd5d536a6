"""A plan is a contract: two previews are identical, and the run installs exactly the bytes the preview showed.

The trust step is previewed twice and run; every node's ca.crt must have the sha256 the
preview named. From the wait gate the preview shows the leaf step as it will run once the
gate opens; after the date, every node's node.crt and node.key are the previewed ones.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from core.config import state as state_mod
from core.rotation import contract
from tests.rotation_support import FUTURE, certrotate, set_node_reload
from tests.tui_helpers import demo_like_lab

pytestmark = pytest.mark.lab

WRITE = re.compile(r"write (\S+) \(sha256 ([0-9a-f]{16})…")


def previewed_sha256(stdout: str) -> dict[str, str]:
    """{remote path: the first 16 hex digits of its sha256} from a dry run's output."""
    return {path: digest for path, digest in WRITE.findall(stdout)}


def on_node(node, name: str) -> str:
    return hashlib.sha256((node.certs_dir / name).read_bytes()).hexdigest()[:16]


def test_the_trust_step_installs_the_ca_bundle_its_two_identical_previews_showed(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    first, second = certrotate(lab, "advance", "--dry-run"), certrotate(lab, "advance", "--dry-run")
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert "starting" not in first.stdout
    digest = re.search(r"\(plan ([0-9a-f]{12})\)", first.stdout).group(1)
    previewed = previewed_sha256(first.stdout)

    run = certrotate(lab, "advance")
    assert run.returncode == 0, run.stderr
    for node in lab.nodes:
        assert on_node(node, "ca.crt") == previewed[f"{node.certs_dir}/ca.crt"]
    assert f"executed plan {digest} (as previewed)" in run.stdout
    assert "differs from preview" not in run.stdout
    journal = state_mod.load(lab.state_path).journal
    assert any(e["action"] == "trust: executed plan" and e["detail"].startswith(digest) for e in journal)


def test_the_leaf_step_previewed_from_the_wait_gate_is_the_one_that_runs(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance").returncode == 0
    assert state_mod.load(lab.state_path).phase == "wait"

    preview = certrotate(lab, "advance", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "dry run of phase leaf" in preview.stdout
    assert "held by the schedule gate: waiting until" in preview.stdout
    assert certrotate(lab, "advance", "--dry-run").stdout == preview.stdout
    previewed = previewed_sha256(preview.stdout)

    run = certrotate(lab, "advance", "--now", FUTURE, "--yes")
    assert run.returncode == 0, run.stderr + run.stdout
    for node in lab.nodes:
        for name in ("node.crt", "node.key"):
            assert on_node(node, name) == previewed[f"{node.certs_dir}/{name}"], (node.name, name)
    assert "(as previewed)" in run.stdout.split("executed plan", 2)[1]


def test_a_host_that_changed_since_the_preview_is_named_before_the_run_acts(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    assert certrotate(lab, "advance", "--dry-run").returncode == 0
    set_node_reload(lab, "n2", f"true && {lab.nodes[1].reload_command}")  # the inventory changed meanwhile
    run = certrotate(lab, "advance")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    warned = next(i for i, line in enumerate(lines) if line.startswith("n2") and "differs from preview" in line)
    acted = next(i for i, line in enumerate(lines) if line.startswith("n2") and " ok " in f" {line} ")
    assert warned < acted
    assert "the last preview was" in run.stdout


def test_two_previews_make_one_new_ca_the_one_made_at_start(lab_factory):
    lab = demo_like_lab(lab_factory)
    assert certrotate(lab, "start", "ca").returncode == 0
    state = state_mod.load(lab.state_path)
    made_at_start = state.rotation["new_ca"]["fingerprint"]
    key = lab.state_path.parent / state.rotation["new_ca"]["key"]
    assert key.stat().st_mode & 0o777 == 0o600
    certrotate(lab, "advance", "--dry-run")
    assert certrotate(lab, "advance").returncode == 0
    assert state_mod.load(lab.state_path).rotation["new_ca"]["fingerprint"] == made_at_start


def test_a_plan_digest_covers_every_host_line_and_ignores_empty_hosts():
    plan = {"n1": ["write /c/ca.crt (sha256 0123456789abcdef…, mode 0644)", "run `kill -HUP 1` (reload)"]}
    assert contract.digest(plan) == contract.digest({**plan, "n2": []})
    assert contract.digest(plan) != contract.digest({"n1": plan["n1"][:1]})
    assert len(contract.digest(plan)) == contract.DIGEST_LENGTH
