"""Shared fixtures: real lab clusters (sshd + PostgreSQL per node on loopback, core.lab).

    def test_something(lab):                 # a fresh 3-node lab for this test (~0.5 s)
        lab.state_path, lab.nodes[0].sql_addr, lab.ssh("n1"), lab.connect_sql("n2", "root")

    def test_other(lab_factory):             # any shape, as many as needed, all stopped afterwards
        lab = lab_factory(nodes=1, ssh_user="postgres", ssh_clients=("app",))

Each lab is function-scoped: tests rotate certificates and stop hosts, so none may see
another's leftovers. Its files live in a directory of its own under /tmp (pytest's tmp
dirs are 0700, which the postgres account cannot enter when the tests run as root);
CERTROTATE_LAB_KEEP=1 keeps them after the test for a look at the logs.
Tests using these fixtures get the `lab` marker automatically (`-m "not lab"` skips them).
"""

from __future__ import annotations

import pytest

from core.lab.cluster import Lab, start_lab

LAB_FIXTURES = {"lab", "lab_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if LAB_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.lab)


@pytest.fixture
def lab_factory():
    """`lab_factory(nodes=3, **start_lab_options) -> Lab`; every lab it made is stopped at teardown."""
    labs: list[Lab] = []

    def make(nodes: int = 3, **options) -> Lab:
        lab = start_lab(None, nodes, **options)
        labs.append(lab)
        return lab

    yield make
    for lab in labs:
        lab.stop()


@pytest.fixture
def lab(lab_factory) -> Lab:
    """A fresh 3-node lab (clients root and app, both exported locally), logged in as the default user."""
    return lab_factory(3)
