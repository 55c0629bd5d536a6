"""The state file: validation that names the line, atomic rewrite, refusal of damage, the lock."""

import datetime as dt
import hashlib
import json
import multiprocessing
import os
import textwrap
import tomllib

import pytest
import tomli_w

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


# -- the journal: written once per entry, at the end, checked as text --------------------
# What an operator (or an auditor with any TOML reader) relies on: the file stays one valid TOML
# document holding every entry in order; a save appends the new entries and leaves the ones
# already written byte for byte; a file written by the previous layout still loads (and is
# rewritten in the new one); a table added by hand after the journal still loads; any change to
# a written entry is refused.


def saved_with_journal(state_path, count: int) -> state_mod.State:
    state = state_mod.load(state_path)
    record_step(state, count)
    state_mod.save(state)
    return state


def record_step(state: state_mod.State, count: int, offset: int = 0) -> None:
    for i in range(offset, offset + count):
        at = NOW + dt.timedelta(seconds=i)
        state.record("trust: write", at=at, host=f"n{i % 7}", path="/var/lib/cockroach/certs/ca.crt", sha256=f"{i:064x}")
        state.record("gate", at=at)  # short: tomli_w alone would write it inline


def test_the_file_is_one_toml_document_with_every_entry_in_order(state_path):
    state = state_mod.load(state_path)
    state.rotation = {"id": "r1", "kind": "ca", "phase": "trust", "started": NOW}
    state.autopilot = {"last_run": NOW}
    record_step(state, 20)
    state_mod.save(state)

    document = tomllib.loads(state_path.read_text())
    assert document["journal"] == state.journal and len(document["journal"]) == 40
    assert document["rotation"]["id"] == "r1" and document["autopilot_status"]["last_run"] == NOW
    assert state_mod.load(state_path).journal == state.journal


def test_a_save_appends_and_leaves_the_written_entries_byte_for_byte(state_path):
    saved_with_journal(state_path, 30)
    before = state_path.read_text()
    written_journal = before[before.index("\n[[journal]]\n"):before.rindex(state_mod.END_MARKER)]

    again = state_mod.load(state_path)
    again.rotation = {"id": "r2", "kind": "nodes", "phase": "leaf", "started": NOW}
    record_step(again, 5, offset=30)
    state_mod.save(again)
    after = state_path.read_text()

    assert written_journal in after
    new_part = after[after.index(written_journal) + len(written_journal):after.rindex(state_mod.END_MARKER)]
    assert new_part.count("[[journal]]") == 10
    assert [e["sha256"] for e in state_mod.load(state_path).journal if "sha256" in e] == [f"{i:064x}" for i in range(35)]


def test_a_changed_entry_is_refused(state_path):
    saved_with_journal(state_path, 3)
    text = state_path.read_text()
    for old, new in (('host = "n1"', 'host = "n9"'), ('action = "gate"', 'action = "done"'),
                     ('action = "gate"\n', 'action = "gate"\nhost = "n1"\n')):
        state_path.write_text(text.replace(old, new, 1))
        with pytest.raises(BadInput, match="does not match its checksum"):
            state_mod.load(state_path)


def test_a_table_added_by_hand_after_the_journal_still_loads(state_path):
    state = saved_with_journal(state_path, 3)
    text = state_path.read_text()
    marker = text.rindex(state_mod.END_MARKER)
    added = '\n[[nodes]]\nname = "n3"\nssh_host = "10.0.0.3"\ncerts_dir = "/var/lib/cockroach/certs"\n'
    state_path.write_text(text[:marker] + added + text[marker:])

    edited = state_mod.load(state_path)
    assert [n.name for n in edited.inventory.nodes] == ["n1", "n2", "n3"]
    assert edited.journal == state.journal
    state_mod.save(edited)
    assert [n.name for n in state_mod.load(state_path).inventory.nodes] == ["n1", "n2", "n3"]


def test_a_file_of_the_previous_layout_loads_and_is_rewritten_in_the_new_one(state_path):
    """Schema 1: the journal among the record's tables, the checksum over the parsed tables."""
    entries = [{"at": NOW, "action": "start"},
               {"at": NOW, "action": "trust: write", "host": "n1", "path": "/c/ca.crt", "sha256": "ab" * 32}]
    tool_data = {"rotation": {"id": "r1", "kind": "ca", "phase": "trust", "started": NOW}, "journal": entries,
                 "autopilot_status": {"last_run": NOW}}
    canonical = json.dumps(tool_data, sort_keys=True, default=str, separators=(",", ":"))
    document = {"certrotate": {"schema": 1, "checksum": hashlib.sha256(canonical.encode()).hexdigest()},
                **tomllib.loads(INVENTORY), **tool_data}
    state_path.write_text(tomli_w.dumps(document) + state_mod.END_MARKER + "\n")

    old = state_mod.load(state_path)
    assert old.journal == entries and old.rotation["id"] == "r1"
    state_mod.save(old)
    rewritten = state_path.read_text()
    assert tomllib.loads(rewritten)["certrotate"]["schema"] == state_mod.SCHEMA
    assert rewritten.index("[autopilot_status]") < rewritten.index("[[journal]]")
    assert state_mod.load(state_path).journal == entries

    damaged = tomli_w.dumps({**document, "journal": entries[:1]}) + state_mod.END_MARKER + "\n"
    state_path.write_text(damaged)
    with pytest.raises(BadInput, match="does not match its checksum"):
        state_mod.load(state_path)


def test_the_journal_read_newest_first_is_the_journal_reversed(state_path):
    """The wizard reads each host's last action from the end; before a save, after it, and after a load."""
    saved_with_journal(state_path, 10)
    loaded = state_mod.load(state_path)
    record_step(loaded, 2, offset=10)  # recorded, not yet written
    assert list(loaded.journal_log.newest_first()) == list(reversed(loaded.journal))
    fresh = state_mod.load(state_path)
    record_step(fresh, 2, offset=10)
    newest = list(fresh.journal_log.newest_first())
    state_mod.save(fresh)  # the text grows behind what was read
    assert newest == list(reversed(fresh.journal)) == list(fresh.journal_log.newest_first())
    assert [e.get("sha256") for e in newest if "sha256" in e][:3] == [f"{i:064x}" for i in (11, 10, 9)]
