"""The state file: the operator's inventory plus everything certrotate records, in one TOML file.

A rotation spans months and several operators, so this file is the memory that makes a
resumed run safe. Hence:
- it is rewritten atomically (temp file, fsync, rename, fsync of the directory);
- a file certrotate wrote ends with an end marker and carries a checksum of the
  tables certrotate owns, because tomllib happily accepts a file cut short or an
  empty one — a damaged record is refused (exit 2) and never overwritten;
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
from typing import Any, Iterator

import tomli_w

from core import files
from core.config.autopilot_policy import AutopilotPolicy, parse_policy, policy_to_toml
from core.config.inventory import Inventory, inventory_to_toml_data, parse_inventory
from core.config.record import RotationRecord
from core.crashpoints import crash_point
from core.errors import BadInput, LockHeld

SCHEMA = 1
END_MARKER = "# end of certrotate state"
TOOL_TABLES = ("certrotate", "rotation", "history", "journal", "autopilot_status")


@dataclass
class State:
    """A loaded state file. `rotation`, `history` and `journal` are plain TOML-able data."""

    path: Path
    inventory: Inventory
    rotation: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    journal: list[dict[str, Any]] = field(default_factory=list)
    policy: AutopilotPolicy | None = None  # the hand-written [autopilot] table (core.config.autopilot_policy)
    autopilot: dict[str, Any] = field(default_factory=dict)  # what autopilot records: last run, notifications sent

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
        self.journal.append(entry)


def _tool_checksum(tool_data: dict[str, Any]) -> str:
    canonical = json.dumps(tool_data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


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
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise BadInput(f"{source} is not valid TOML at {_position(text, error)}.") from None

    meta = data.get("certrotate")
    if meta is not None:
        if not isinstance(meta, dict) or not isinstance(meta.get("schema"), int):
            raise BadInput(f"{source}: [certrotate] is damaged (no schema version).")
        if meta["schema"] > SCHEMA:
            raise BadInput(f"{source} was written by a newer certrotate (schema {meta['schema']}); upgrade certrotate.")
        if text.rstrip().splitlines()[-1].strip() != END_MARKER:
            raise BadInput(f"{source} is cut short: certrotate's end marker is missing; restore it from a backup.")
        tool_data = {key: data.get(key) for key in TOOL_TABLES if key != "certrotate" and key in data}
        if meta.get("checksum") != _tool_checksum(tool_data):
            raise BadInput(
                f"{source}: the rotation record does not match its checksum (damaged or edited); "
                "restore it from a backup."
            )
        data = migrate(data, meta["schema"])

    inventory = parse_inventory(data, text, source)
    rotation = data.get("rotation", {})
    history = data.get("history", [])
    journal = data.get("journal", [])
    autopilot = data.get("autopilot_status", {})
    if not isinstance(rotation, dict) or not isinstance(history, list) or not isinstance(journal, list) \
            or not isinstance(autopilot, dict):
        raise BadInput(f"{source}: [rotation], [[history]], [[journal]] or [autopilot_status] has the wrong shape.")
    policy = parse_policy(data, text, source, inventory.cluster)
    return State(path=path, inventory=inventory, rotation=rotation, history=history, journal=journal,
                 policy=policy, autopilot=autopilot)


def migrate(data: dict[str, Any], schema: int) -> dict[str, Any]:
    """Bring older records up to SCHEMA; each future version adds one step here."""
    return data


def load(path: Path) -> State:
    path = Path(path)
    raw = files.read_bytes(path, "State file")
    return parse_state(raw, path.absolute())


def dumps(state: State) -> bytes:
    tool_data: dict[str, Any] = {}
    if state.rotation:
        tool_data["rotation"] = state.rotation
    if state.history:
        tool_data["history"] = state.history
    if state.journal:
        tool_data["journal"] = state.journal
    if state.autopilot:
        tool_data["autopilot_status"] = state.autopilot
    document: dict[str, Any] = {"certrotate": {"schema": SCHEMA, "checksum": _tool_checksum(tool_data)}}
    document.update(inventory_to_toml_data(state.inventory))
    if state.policy is not None:
        document["autopilot"] = policy_to_toml(state.policy)
    document.update(tool_data)
    header = "# certrotate state file. Comments are not kept: certrotate rewrites this file.\n"
    return (header + tomli_w.dumps(document) + END_MARKER + "\n").encode()


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
