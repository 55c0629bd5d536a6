"""Reliability: a damaged state file at the command line, and properties of the file format.

Rows 4 and 7 of the matrix in tests/test_reliability_matrix.py. No lab: a damaged state
file must be refused before any host is contacted, so the inventory points nowhere.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import textwrap
from pathlib import Path

import pytest
import tomli_w
import tomllib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import state as state_mod
from core.errors import BadInput
from tests.rotation_support import CERTROTATE

pytestmark = pytest.mark.reliability

INVENTORY = textwrap.dedent("""\
    [cluster]
    name = "prod"
    profile = "postgres"

    [[nodes]]
    name = "n1"
    ssh_host = "127.0.0.1"
    ssh_port = 1
    certs_dir = "/var/lib/postgresql/certs"
    sql_addr = "127.0.0.1:1"

    [[clients]]
    user = "root"
    """)

NOW = dt.datetime(2026, 11, 23, 12, tzinfo=dt.timezone.utc)


def written_state(path: Path) -> bytes:
    """A state file as certrotate writes it mid-rotation: inventory, record, journal, checksum, end marker."""
    path.write_text(INVENTORY)
    st_ = state_mod.load(path)
    st_.rotation = {"id": "ca-20261123", "kind": "ca", "phase": "trust", "started": NOW,
                    "nodes": {"n1": {"trust": "done", "trust_sha256": "ab" * 32}}}
    st_.record("upload", at=NOW, host="n1", path="/var/lib/postgresql/certs/ca.crt", sha256="cd" * 32)
    state_mod.save(st_)
    return path.read_bytes()


def tool_part_start(raw: bytes) -> int:
    """Offset of the first table certrotate owns after the inventory (the record and the journal)."""
    return raw.index(b"[rotation]")


def damaged_variants(raw: bytes) -> dict[str, bytes]:
    start = tool_part_start(raw)
    length = len(raw) - start
    variants = {
        "empty": b"",
        "bom": b"\xef\xbb\xbf" + raw,
        "bad-utf8": raw[:start + 5] + b"\xff\xfe" + raw[start + 7:],
    }
    for i, fraction in enumerate((0.0, 0.13, 0.37, 0.61, 0.88, 0.999)):
        offset = start + int(fraction * (length - 1))
        flipped = bytearray(raw)
        flipped[offset] ^= 1 << (i % 8)
        variants[f"bitflip@{offset}"] = bytes(flipped)
    for fraction in (0.05, 0.5, 0.95):
        cut = start + int(fraction * length)
        variants[f"truncated@{cut}"] = raw[:cut]
    variants["truncated-before-marker"] = raw[: raw.rindex(state_mod.END_MARKER.encode())]
    return variants


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> bytes:
    return written_state(tmp_path_factory.mktemp("ref") / "certrotate.toml")


def test_every_single_bit_flip_in_the_record_is_refused(reference, tmp_path):
    """Every byte of the tool-owned part, each with a different bit flipped: BadInput, never a load."""
    path = tmp_path / "certrotate.toml"
    start = tool_part_start(reference)
    accepted = []
    for offset in range(start, len(reference)):
        for bit in (offset % 8, (offset + 3) % 8):
            flipped = bytearray(reference)
            flipped[offset] ^= 1 << bit
            try:
                state_mod.parse_state(bytes(flipped), path)
            except BadInput:
                continue
            accepted.append((offset, bit))
    assert accepted == []


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CERTROTATE, *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "HOME": "/nonexistent"})


def test_damaged_state_file_at_the_cli_is_exit_2_one_sentence_and_untouched(reference, tmp_path):
    seen = {}
    for name, content in damaged_variants(reference).items():
        path = tmp_path / f"{name}.toml"
        path.write_bytes(content)
        for command in (["status", "--json"], ["advance", "--yes"]):
            result = run_cli(*command, "--state", str(path))
            where = f"{name} {' '.join(command)}"
            assert result.returncode == 2, f"{where}: exit {result.returncode}: {result.stderr}{result.stdout}"
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in result.stderr, f"{where}: {result.stderr}"
            assert str(path) in lines[0], f"{where}: the sentence does not name the file: {lines[0]}"
            assert path.read_bytes() == content, f"{where}: the damaged file was rewritten"
            seen[name] = lines[0]
    print("\n".join(f"{k}: {v}" for k, v in seen.items()))


# -- Hypothesis: load ∘ dump is the identity ------------------------------------------------

NAME = st.from_regex(r"\A[a-z][a-z0-9-]{0,10}\Z")
KEY_TYPES = st.sampled_from(["rsa-2048", "rsa-3072", "rsa-4096", "ecdsa-p256", "ecdsa-p384"])
IPV4 = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t)))
DNS = st.lists(NAME, min_size=1, max_size=3).map(".".join)
ABS_DIR = st.lists(NAME, min_size=1, max_size=4).map(lambda parts: "/" + "/".join(parts))


@st.composite
def inventories(draw) -> dict:
    names = draw(st.lists(NAME, min_size=1, max_size=5, unique=True))
    nodes = []
    for name in names:
        node = {"name": name, "ssh_host": draw(st.one_of(IPV4, DNS)), "certs_dir": draw(ABS_DIR)}
        if draw(st.booleans()):
            node["ssh_port"] = draw(st.integers(1, 65535))
        if draw(st.booleans()):
            node["ssh_user"] = draw(NAME)
        if draw(st.booleans()):
            node["addresses"] = draw(st.lists(st.one_of(IPV4, DNS), min_size=1, max_size=3, unique=True))
        if draw(st.booleans()):
            node["sql_addr"] = f"{draw(IPV4)}:{draw(st.integers(1, 65535))}"
        if draw(st.booleans()):
            node["region"] = draw(NAME)
        nodes.append(node)
    cluster = {"name": draw(NAME), "profile": draw(st.sampled_from(["cockroach", "postgres", "generic"])),
               "key_type": draw(KEY_TYPES), "leaf_delay_days": draw(st.integers(0, 365))}
    clients = [{"user": user} for user in draw(st.lists(NAME, max_size=3, unique=True))]
    return {"cluster": cluster, "nodes": nodes, **({"clients": clients} if clients else {})}


TEXT = st.text(max_size=40)
DATETIMES = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(9999, 1, 1),
                         timezones=st.sampled_from([dt.timezone.utc, None]))
SCALARS = st.one_of(TEXT, st.integers(-(2**63), 2**63 - 1), st.booleans(), DATETIMES,
                    st.floats(allow_nan=False, allow_infinity=False))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)), max_leaves=12)
RECORDS = st.dictionaries(TEXT, VALUES, max_size=6)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventory=inventories(), rotation=RECORDS, history=st.lists(RECORDS, max_size=3),
       journal=st.lists(RECORDS, max_size=4))
def test_load_of_dump_is_the_identity(inventory, rotation, history, journal):
    path = Path("/nonexistent/certrotate.toml")
    loaded = state_mod.parse_state(tomli_w.dumps(inventory).encode(), path)
    loaded.rotation, loaded.history, loaded.journal = rotation, history, journal
    dumped = state_mod.dumps(loaded)
    again = state_mod.parse_state(dumped, path)
    assert again.inventory == loaded.inventory
    assert (again.rotation, again.history, again.journal) == (rotation, history, journal)
    assert state_mod.dumps(again) == dumped


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventory=inventories(), rotation=RECORDS, history=st.lists(RECORDS, max_size=3), autopilot=RECORDS)
def test_the_file_is_written_as_one_tomli_w_document_would_be(inventory, rotation, history, autopilot):
    """The inventory's text is kept from save to save; the file is still exactly tomli_w's."""
    path = Path("/nonexistent/certrotate.toml")
    loaded = state_mod.parse_state(tomli_w.dumps(inventory).encode(), path)
    loaded.rotation, loaded.history, loaded.autopilot = rotation, history, autopilot
    state_mod.dumps(loaded)  # the inventory's text is now the kept one
    text = state_mod.dumps(loaded).decode()
    meta = tomllib.loads(text)["certrotate"]
    records = {k: v for k, v in (("rotation", rotation), ("history", history), ("autopilot_status", autopilot)) if v}
    from core.config.inventory import inventory_to_toml_data
    whole = tomli_w.dumps({"certrotate": meta, **inventory_to_toml_data(loaded.inventory), **records})
    assert text.split("\n", 1)[1] == whole + state_mod.END_MARKER + "\n"
