"""The state file: the operator's inventory plus everything certrotate records, in one TOML file.

A rotation spans months and several operators, so this file is the memory that makes a
resumed run safe. Hence:
- it is rewritten atomically (temp file, fsync, rename, fsync of the directory);
- a file certrotate wrote ends with an end marker and carries a checksum of the
  tables certrotate owns, because tomllib happily accepts a file cut short or an
  empty one — a damaged record is refused (exit 2) and never overwritten;
- the journal is written last and checked as text, so loads and saves do not re-read or
  re-format it (core.config.journal says why);
- the inventory tables are not checksummed: operators may edit them by hand;
- a process holds an flock on `<state>.lock` while it works; a second one exits 3
  naming the holder.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import fcntl
import hashlib
import json
import os
import socket
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import tomli_w

from core import files
from core.config.inventory import Inventory, inventory_to_toml_data, parse_inventory
from core.config.journal import SECTION_START, Journal, format_entries
from core.config.record import RotationRecord
from core.crashpoints import crash_point
from core.errors import BadInput, LockHeld

if TYPE_CHECKING:
    from core.config.autopilot_policy import AutopilotPolicy

SCHEMA = 2  # 2: the journal last, its checksum over its text (1: over the parsed journal)
END_MARKER = "# end of certrotate state"
TOOL_TABLES = ("certrotate", "rotation", "history", "journal", "autopilot_status")
RECORD_TABLES = ("rotation", "history", "autopilot_status")  # the tool's tables other than the journal


@dataclass
class State:
    """A loaded state file. `rotation`, `history` and `journal` are plain TOML-able data."""

    path: Path
    inventory: Inventory
    rotation: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    journal_log: Journal = field(default_factory=Journal)
    policy: AutopilotPolicy | None = None  # the hand-written [autopilot] table (core.config.autopilot_policy)
    autopilot: dict[str, Any] = field(default_factory=dict)  # what autopilot records: last run, notifications sent

    @property
    def journal(self) -> list[dict[str, Any]]:
        """Every action recorded, oldest first (parsed from the file on first read)."""
        return self.journal_log.entries()

    @journal.setter
    def journal(self, entries: list[dict[str, Any]]) -> None:
        self.journal_log = Journal.of(entries)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def phase(self) -> str:
        return RotationRecord(self.rotation).phase

    def record(self, action: str, *, at: dt.datetime, host: str = "", path: str = "", sha256: str = "", detail: str = "") -> None:
        """Append to the journal: what, where, which content, when. Never key material."""
        entry = {"at": at, "action": action}
        for key, value in (("host", host), ("path", path), ("sha256", sha256), ("detail", detail)):
            if value:
                entry[key] = value
        self.journal_log.append(entry)


def _canonical(tool_data: dict[str, Any]) -> str:
    return json.dumps(tool_data, sort_keys=True, default=str, separators=(",", ":"))


def _tool_checksum(records: dict[str, Any], journal_text: str) -> str:
    """Schema 2: the record tables as data (a TOML rewrite of equal data matches), the journal as written."""
    return hashlib.sha256(_canonical(records).encode() + b"\0" + journal_text.encode()).hexdigest()


def _schema1_checksum(tool_data: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical(tool_data).encode()).hexdigest()


def _position(text: str, error: tomllib.TOMLDecodeError) -> str:
    line = getattr(error, "lineno", None)
    column = getattr(error, "colno", None)
    message = getattr(error, "msg", str(error))
    if line:
        return f"line {line}, column {column}: {message}"
    return str(error)


def parse_state(raw: bytes, path: Path) -> State:
    """Parse and validate; every problem is a BadInput naming the file and the place."""
    source = str(path)
    if raw.startswith(b"\xef\xbb\xbf"):
        raise BadInput(f"{source} starts with a byte-order mark; save it as UTF-8 without BOM.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise BadInput(f"{source} line {line} is not valid UTF-8.") from None
    if not text.strip():
        raise BadInput(f"{source} is empty; it needs at least [cluster] name and one [[nodes]].")
    data, journal = _parse_written(text) or _parse_whole(text, source)

    inventory = parse_inventory(data, text, source)
    rotation = data.get("rotation", {})
    history = data.get("history", [])
    autopilot = data.get("autopilot_status", {})
    if not isinstance(rotation, dict) or not isinstance(history, list) or not isinstance(autopilot, dict):
        raise _wrong_shape(source)
    policy = None
    if "autopilot" in data:  # only a file that schedules autopilot loads the policy's module (and its dataclasses)
        from core.config.autopilot_policy import parse_policy

        policy = parse_policy(data, text, source, inventory.cluster)
    return State(path=path, inventory=inventory, rotation=rotation, history=history, journal_log=journal,
                 policy=policy, autopilot=autopilot)


def _parse_written(text: str) -> tuple[dict[str, Any], Journal] | None:
    """The quick way, for a file as certrotate wrote it: parse what precedes the journal, hash the journal.

    None when the file is not exactly that (hand-written, an older schema, edited, damaged):
    `_parse_whole` then reads all of it and says what is wrong.
    """
    marker = text.rfind(END_MARKER)
    start = text.find(SECTION_START)
    if marker == -1 or text[marker:] != END_MARKER + "\n":
        return None
    if start == -1 or start > marker:
        start = marker
    try:
        data = tomllib.loads(text[:start])
    except tomllib.TOMLDecodeError:
        return None
    meta = data.get("certrotate")
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA or "journal" in data:
        return None
    section = text[start:marker]
    if meta.get("checksum") != _tool_checksum(_records(data), section):
        return None
    return data, Journal(section)


def _parse_whole(text: str, source: str) -> tuple[dict[str, Any], Journal]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{source} is not valid TOML at {_position(text, error)}.") from None
    entries = data.get("journal", [])
    if not isinstance(entries, list) or not all(isinstance(entry, dict) for entry in entries):
        raise _wrong_shape(source)
    meta = data.get("certrotate")
    if meta is None:  # a hand-written inventory: nothing recorded yet
        return data, Journal.of(entries)
    if not isinstance(meta, dict) or not isinstance(meta.get("schema"), int):
        raise BadInput(f"{source}: [certrotate] is damaged (no schema version).")
    if meta["schema"] > SCHEMA:
        raise BadInput(f"{source} was written by a newer certrotate (schema {meta['schema']}); upgrade certrotate.")
    if text.rstrip().splitlines()[-1].strip() != END_MARKER:
        raise BadInput(f"{source} is cut short: certrotate's end marker is missing; restore it from a backup.")
    if meta["schema"] == 1:
        tool_data = {key: data.get(key) for key in TOOL_TABLES if key != "certrotate" and key in data}
        matches = meta.get("checksum") == _schema1_checksum(tool_data)
        journal = Journal.of(entries)  # written in the new layout at the next save
    else:  # edited between the journal and the end marker (e.g. a table added there): the journal as data
        section = format_entries(entries)
        matches = meta.get("checksum") == _tool_checksum(_records(data), section)
        journal = Journal(section, entries)
    if not matches:
        raise BadInput(
            f"{source}: the rotation record does not match its checksum (damaged or edited); "
            "restore it from a backup."
        )
    return migrate(data, meta["schema"]), journal


def _wrong_shape(source: str) -> BadInput:
    return BadInput(f"{source}: [rotation], [[history]], [[journal]] or [autopilot_status] has the wrong shape.")


def _records(data: dict[str, Any]) -> dict[str, Any]:
    return {key: data[key] for key in RECORD_TABLES if key in data}


def migrate(data: dict[str, Any], schema: int) -> dict[str, Any]:
    """Bring older records up to SCHEMA; each future version adds one step here."""
    return data


def load(path: Path) -> State:
    path = Path(path)
    raw = files.read_bytes(path, "State file")
    return parse_state(raw, path.absolute())


def dumps(state: State) -> bytes:
    records = {key: value for key, value in (("rotation", state.rotation), ("history", state.history),
                                              ("autopilot_status", state.autopilot)) if value}
    journal_text = state.journal_log.text()
    meta = {"certrotate": {"schema": SCHEMA, "checksum": _tool_checksum(records, journal_text)}}
    rest: dict[str, Any] = {}
    if state.policy is not None:
        from core.config.autopilot_policy import policy_to_toml

        rest["autopilot"] = policy_to_toml(state.policy)
    rest.update(records)
    header = "# certrotate state file. Comments are not kept: certrotate rewrites this file.\n"
    return (header + _tables(meta, state.inventory, rest) + journal_text + END_MARKER + "\n").encode()


_formatted_inventory: tuple[Inventory | None, tuple[str, str]] = (None, ("", ""))  # the last one formatted


def _tables(meta: dict[str, Any], inventory: Inventory, rest: dict[str, Any]) -> str:
    """tomli_w.dumps of meta, inventory and rest as one document, with the inventory's part formatted
    once per Inventory (they are frozen): a run saves many times, and its inventory never changes.

    tomli_w writes a document's keys that are not tables (a short array written inline, such as
    `clients = [{ user = "root" }]`) before its first table, so each part is split in two and
    the keys of all of them come first.
    """
    global _formatted_inventory
    known, inventory_parts = _formatted_inventory
    if known is not inventory:
        inventory_parts = _split(tomli_w.dumps(inventory_to_toml_data(inventory)))
        _formatted_inventory = (inventory, inventory_parts)
    parts = [_split(tomli_w.dumps(meta)), inventory_parts, _split(tomli_w.dumps(rest))]
    keys = "".join(part[0] for part in parts)
    tables = "\n".join(part[1] for part in parts if part[1])
    return keys + ("\n" if keys and tables else "") + tables


def _split(text: str) -> tuple[str, str]:
    """tomli_w's text of a document: (its keys outside any table, its tables). tomli_w ends the keys
    with a blank line before the first table, and writes no blank line among them."""
    if text.startswith("["):
        return "", text
    start = text.find("\n\n[")
    if start == -1:
        return text, ""
    return text[:start + 1], text[start + 2:]


def save(state: State) -> None:
    """Atomic rewrite that keeps the file's mode (0600 for a new file); a no-op when nothing changed."""
    content = dumps(state)
    mode = 0o600
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(state.path.stat().st_mode)
        if state.path.read_bytes() == content:
            return
    crash_point("save", "before")
    files.write_atomic(state.path, content, mode=mode, overwrite=True)
    crash_point("save", "after")


def snapshot(state: State) -> State:
    return copy.deepcopy(state)


@contextlib.contextmanager
def locked(path: Path, holder: str = "") -> Iterator[None]:
    """Hold `<state>.lock` for the duration; a second holder gets LockHeld (exit 3).

    `holder` says who holds it ("the wizard"), for the sentence another certrotate prints.
    The lock file is removed on release (no empty file is left beside the state file); a
    process that opened it just before is told by the inode check below and tries again.
    """
    lock_path = Path(str(path) + ".lock")
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as error:
            raise BadInput(f"Cannot create the lock file {lock_path}: {error.strerror}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 200, 0).decode(errors="replace").strip()
            os.close(fd)
            who, _, what = text.partition(";")
            if what.strip() == "wizard":
                raise LockHeld(f"{path} is open in the certrotate wizard ({who or 'another process'}); "
                               "quit the wizard (q) first, or wait for it to close.") from None
            raise LockHeld(f"{path} is in use by certrotate ({who or 'another process'}); "
                           "wait for it to finish.") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock_path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder before us removed that file as we opened it: lock the new one
    try:
        os.ftruncate(fd, 0)
        label = f";{holder}" if holder else ""
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}{label}\n".encode(), 0)
        try:
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(lock_path)
    finally:
        os.close(fd)
