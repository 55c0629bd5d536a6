"""The state file: validation that names the line, atomic rewrite, refusal of damage, the lock."""

import datetime as dt
import multiprocessing
import os
import textwrap

import pytest

from core.config import state as state_mod
from core.errors import BadInput, LockHeld

INVENTORY = textwrap.dedent("""\
    # my cluster
    [cluster]
    name = "prod"
    profile = "postgres"

    [[nodes]]
    name = "n1"
    ssh_host = "10.0.0.1"
    certs_dir = "/var/lib/cockroach/certs"
    addresses = ["n1.example.com", "10.0.0.1"]
    sql_addr = "10.0.0.1:26257"

    [[nodes]]
    name = "n2"
    ssh_host = "10.0.0.2"
    certs_dir = "/var/lib/cockroach/certs"

    [[clients]]
    user = "root"
    """)

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def state_path(tmp_path):
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY)
    return path


def written(state_path):
    st = state_mod.load(state_path)
    st.rotation = {"id": "r1", "kind": "ca", "phase": "trust", "started": NOW}
    st.record("upload", at=NOW, host="n1", path="/var/lib/cockroach/certs/ca.crt", sha256="ab" * 32)
    state_mod.save(st)
    return st


def test_hand_written_inventory_loads_with_defaults(state_path):
    st = state_mod.load(state_path)
    assert st.inventory.cluster.name == "prod" and st.inventory.cluster.leaf_delay_days == 30
    assert [n.name for n in st.inventory.nodes] == ["n1", "n2"]
    assert st.inventory.nodes[1].ssh_port == 22
    assert st.phase == "idle"


def test_save_then_load_is_identity(state_path):
    st = written(state_path)
    again = state_mod.load(state_path)
    assert again.inventory == st.inventory
    assert again.rotation == st.rotation and again.journal == st.journal
    assert state_mod.dumps(again) == state_path.read_bytes()


@pytest.mark.parametrize("bad,needle", [
    ('ssh_port = "22"', "line 12: nodes[0].ssh_port must be a whole number"),
    ('certs_dir2 = "/x"', "line 12: nodes[0].certs_dir2 is not a known field"),
    ('ssh_user = "a;rm -rf /"', "nodes[0].ssh_user 'a;rm -rf /' is not a valid user name"),
])
def test_bad_field_is_named_with_its_line(state_path, bad, needle):
    text = INVENTORY.replace('sql_addr = "10.0.0.1:26257"\n', 'sql_addr = "10.0.0.1:26257"\n' + bad + "\n")
    state_path.write_text(text)
    with pytest.raises(BadInput) as info:
        state_mod.load(state_path)
    assert needle in str(info.value)


def test_hostile_client_user_is_refused(state_path):
    state_path.write_text(INVENTORY.replace('user = "root"', 'user = "../../etc/cron.d/x"'))
    with pytest.raises(BadInput, match=r"line 19: clients\[0\].user"):
        state_mod.load(state_path)


def test_relative_remote_dir_and_duplicate_names_are_refused(state_path):
    state_path.write_text(INVENTORY.replace('certs_dir = "/var/lib/cockroach/certs"\n\n[[clients]]', 'certs_dir = "certs"\n\n[[clients]]'))
    with pytest.raises(BadInput, match="absolute path"):
        state_mod.load(state_path)
    state_path.write_text(INVENTORY.replace('name = "n2"', 'name = "n1"'))
    with pytest.raises(BadInput, match="unique"):
        state_mod.load(state_path)


def test_syntax_error_gives_line_and_column(state_path):
    state_path.write_text(INVENTORY.replace('name = "n2"', 'name = "n2'))
    with pytest.raises(BadInput, match=r"line 14, column \d+"):
        state_mod.load(state_path)


@pytest.mark.parametrize("raw,needle", [
    (b"", "empty"), (b"\xef\xbb\xbf[cluster]\n", "byte-order mark"), (b'[cluster]\nname = "\xff"\n', "line 2 is not valid UTF-8"),
])
def test_empty_bom_and_bad_utf8(state_path, raw, needle):
    state_path.write_bytes(raw)
    with pytest.raises(BadInput, match=needle):
        state_mod.load(state_path)


def test_every_prefix_of_a_written_file_is_refused(state_path):
    written(state_path)
    full = state_path.read_bytes()
    for cut in range(0, len(full) - 1):
        with pytest.raises(BadInput):
            state_mod.parse_state(full[:cut], state_path)


def test_changed_rotation_record_is_refused_but_inventory_edits_are_fine(state_path):
    written(state_path)
    text = state_path.read_text()
    state_path.write_text(text.replace('phase = "trust"', 'phase = "retire"'))
    with pytest.raises(BadInput, match="checksum"):
        state_mod.load(state_path)
    state_path.write_text(text.replace('ssh_host = "10.0.0.2"', 'ssh_host = "10.0.0.22"'))
    assert state_mod.load(state_path).inventory.nodes[1].ssh_host == "10.0.0.22"


def test_rewrite_keeps_mode_and_leaves_no_temp(state_path):
    os.chmod(state_path, 0o640)
    written(state_path)
    assert oct(state_path.stat().st_mode & 0o777) == "0o640"
    assert sorted(p.name for p in state_path.parent.iterdir()) == ["certrotate.toml"]


def _hold_lock(path, ready, release):
    with state_mod.locked(path):
        ready.set()
        release.wait(10)


def test_second_holder_gets_lock_held_naming_the_pid(state_path):
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold_lock, args=(state_path, ready, release))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockHeld, match=f"pid {holder.pid}"):
            with state_mod.locked(state_path):
                pass
    finally:
        release.set()
        holder.join(10)
    with state_mod.locked(state_path):
        pass
