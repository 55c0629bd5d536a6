"""Planning a client delivery when its certs dir is a symlink: the same files, one swap instead of in-place writes."""

from __future__ import annotations

import hashlib

from core.rotation.linked_certs import plan_client_delivery
from core.rotation.model import RunCommand, SwapLinkedDir, WriteFiles, describe_plan
from core.rotation.plans import HostFacts

FILES = {"client.app.key": (b"key\n", 0o600), "client.app.crt": (b"cert\n", 0o644), "ca.crt": (b"ca\n", 0o644)}


def _plan(facts: HostFacts, *, linked: bool, restart: str | None = "systemctl restart app"):
    return plan_client_delivery("app@h", "/etc/app/certs", facts, FILES, restart=restart, backup_id="r1.leaf",
                                linked=linked)


def test_a_plain_certs_dir_is_planned_as_before():
    actions = _plan(HostFacts("app@h"), linked=False)
    assert [type(a) for a in actions] == [WriteFiles, RunCommand]
    assert [f.path for f in actions[0].files] == [f"/etc/app/certs/{n}" for n in FILES]


def test_a_linked_certs_dir_gets_the_same_files_in_one_swap_then_the_restart():
    actions = _plan(HostFacts("app@h"), linked=True)
    assert [type(a) for a in actions] == [SwapLinkedDir, RunCommand]
    swap = actions[0]
    assert swap.certs_dir == "/etc/app/certs" and swap.backup_id == "r1.leaf"
    assert [(f.path, f.content, f.mode) for f in swap.files] == [
        (f"/etc/app/certs/{n}", content, mode) for n, (content, mode) in FILES.items()]
    lines = describe_plan(actions)
    assert lines[-2] == "point the symlink /etc/app/certs at the new version"
    assert lines[-1] == "run `systemctl restart app` (restart)"
    assert all("into a new version of /etc/app/certs" in line for line in lines[:3])


def test_only_what_differs_goes_into_the_new_version_and_nothing_when_all_is_there():
    have = {f"/etc/app/certs/{n}": hashlib.sha256(c).hexdigest() for n, (c, _) in FILES.items()}
    assert _plan(HostFacts("app@h", have), linked=True) == []
    del have["/etc/app/certs/ca.crt"]
    swap, _ = _plan(HostFacts("app@h", have), linked=True)
    assert [f.path for f in swap.files] == ["/etc/app/certs/ca.crt"]  # the rest is copied from the current version
    assert _plan(HostFacts("app@h", have), linked=True, restart=None) == [swap]
