"""The journal in the state file: written once per entry, at the end, checked as text.

What an operator (or an auditor with any TOML reader) relies on: the file stays one valid
TOML document holding every entry in order; a save appends the new entries and leaves the
ones already written byte for byte; a file written by the previous layout still loads
(and is rewritten in the new one); a table added by hand after the journal still loads;
any change to a written entry is refused.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import textwrap
import tomllib

import pytest
import tomli_w

from core.config import state as state_mod
from core.errors import BadInput

INVENTORY = textwrap.dedent("""\
    [cluster]
    name = "prod"
    profile = "postgres"

    [[nodes]]
    name = "n1"
    ssh_host = "10.0.0.1"
    certs_dir = "/var/lib/cockroach/certs"
    """)

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)


def record_step(state: state_mod.State, count: int, offset: int = 0) -> None:
    for i in range(offset, offset + count):
        at = NOW + dt.timedelta(seconds=i)
        state.record("trust: write", at=at, host=f"n{i % 7}", path="/var/lib/cockroach/certs/ca.crt", sha256=f"{i:064x}")
        state.record("gate", at=at)  # short: tomli_w alone would write it inline


@pytest.fixture
def state_path(tmp_path):
    path = tmp_path / "certrotate.toml"
    path.write_text(INVENTORY)
    return path


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
    state = state_mod.load(state_path)
    record_step(state, 30)
    state_mod.save(state)
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
    state = state_mod.load(state_path)
    record_step(state, 3)
    state_mod.save(state)
    text = state_path.read_text()
    for old, new in (('host = "n1"', 'host = "n9"'), ('action = "gate"', 'action = "done"'),
                     ('action = "gate"\n', 'action = "gate"\nhost = "n1"\n')):
        state_path.write_text(text.replace(old, new, 1))
        with pytest.raises(BadInput, match="does not match its checksum"):
            state_mod.load(state_path)


def test_a_table_added_by_hand_after_the_journal_still_loads(state_path):
    state = state_mod.load(state_path)
    record_step(state, 3)
    state_mod.save(state)
    text = state_path.read_text()
    marker = text.rindex(state_mod.END_MARKER)
    added = '\n[[nodes]]\nname = "n2"\nssh_host = "10.0.0.2"\ncerts_dir = "/var/lib/cockroach/certs"\n'
    state_path.write_text(text[:marker] + added + text[marker:])

    edited = state_mod.load(state_path)
    assert [n.name for n in edited.inventory.nodes] == ["n1", "n2"]
    assert edited.journal == state.journal
    state_mod.save(edited)
    assert [n.name for n in state_mod.load(state_path).inventory.nodes] == ["n1", "n2"]


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
