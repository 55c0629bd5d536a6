"""Reliability row 10: a full CA rotation on 12 lab nodes under a continuous verify-full client.

Run with -s to see the figures (connections made, failures, rotation time).
"""

from __future__ import annotations

import time

import pytest

from tests.rotation_support import FUTURE, LiveClient, certrotate, certs_in, lab_with_restarting_client

pytestmark = [pytest.mark.lab, pytest.mark.reliability, pytest.mark.soak]

NODES = 12


def test_ca_rotation_on_12_nodes_with_zero_failed_connections(lab_factory):
    started_lab = time.monotonic()
    lab, marker = lab_with_restarting_client(lab_factory, NODES)
    lab_seconds = time.monotonic() - started_lab

    client_dir = lab.client_host("app").certs_dir
    with LiveClient(lab, client_dir, "app", marker) as client:
        started = time.monotonic()
        assert certrotate(lab, "start", "ca").returncode == 0
        trust = certrotate(lab, "advance")
        assert trust.returncode == 0, trust.stderr
        trust_seconds = time.monotonic() - started
        rest = certrotate(lab, "advance", "--now", FUTURE, "--yes")
        assert rest.returncode == 0, rest.stderr + rest.stdout
        rotation_seconds = time.monotonic() - started
        during = client.ok
        # a few rounds on the final files: every node with the new certificates
        rounds_after = client.ok + 2 * NODES
        deadline = time.monotonic() + 30
        while client.ok < rounds_after and time.monotonic() < deadline and not client.failures:
            time.sleep(0.05)

    print(f"\nsoak: {NODES} nodes (lab up in {lab_seconds:.1f} s); rotation {rotation_seconds:.1f} s "
          f"(trust {trust_seconds:.1f} s); {during} connections during it, {client.ok} in all, "
          f"{len(client.failures)} failed, client reloads {client.reloads}")
    assert client.failures == []
    assert during >= NODES * 3 and client.ok >= rounds_after
    new_ca = certs_in(lab.local_certs_dir / "ca.crt")
    assert len(new_ca) == 1
    for node in lab.nodes:
        assert certs_in(node.certs_dir / "ca.crt") == new_ca
