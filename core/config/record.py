"""Typed views of the `[rotation]` record: the only place that knows its keys.

The record is the nested dict the state file keeps under `[rotation]` (TOML tables), so a
rotation resumes on any machine with the file. Code reads and writes it through these views
instead of string keys scattered around: `RotationRecord` for the rotation itself, and
`HostRecord` for one node's or client's progress. The views hold no data of their own;
they read and change the dict in place, so the state file sees every change.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

DONE = "done"
FAILED = "failed"
# The confirmation each phase collects from manually delivered clients (the wizard's checklist).
CONFIRM_KEYS = {"trust": "trust_confirmed", "wait": "trust_confirmed",
                "leaf": "leaf_confirmed", "retire": "leaf_confirmed"}


def rotation_id_for(kind: str, now: dt.datetime) -> str:
    return f"{now:%Y%m%dT%H%M%SZ}-{kind}"


def client_key_for(user: str, ssh_host: str | None) -> str:
    """How a client is named in the record: the user, and its host when delivered over SSH."""
    return f"{user}@{ssh_host}" if ssh_host else user


def client_key(client) -> str:
    """The record's name of a ClientConfig."""
    return client_key_for(client.user, client.ssh_host)


def confirm_key_for(phase: str) -> str | None:
    return CONFIRM_KEYS.get(phase)


class HostRecord:
    """One node's or client's progress: per step done/failed, when, and what it was given."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def status(self, step: str) -> str | None:
        return self.data.get(step)

    def done(self, step: str) -> bool:
        return self.data.get(step) == DONE

    def done_at(self, step: str) -> dt.datetime | None:
        value = self.data.get(f"{step}_at")
        return value if isinstance(value, dt.datetime) else None

    def confirmed(self, confirm_key: str) -> bool:
        return bool(self.data.get(confirm_key))


class RotationRecord:
    """The rotation in flight, as `[rotation]` keeps it (an empty dict when none is)."""

    def __init__(self, data: dict[str, Any]):
        self.data = data

    def __bool__(self) -> bool:
        return bool(self.data)

    @property
    def id(self) -> str | None:
        return self.data.get("id")

    @property
    def kind(self) -> str | None:
        return self.data.get("kind")

    @property
    def phase(self) -> str:
        return self.data.get("phase", "idle") if self.data else "idle"

    @property
    def started(self) -> dt.datetime | None:
        return self._time("started")

    @property
    def trust_done_at(self) -> dt.datetime | None:
        return self._time("trust_done_at")

    @property
    def wait_until(self) -> dt.datetime | None:
        return self._time("wait_until")

    @property
    def last_error(self) -> str:
        return self.data.get("last_error") or ""

    @property
    def new_ca(self) -> dict[str, str]:
        """The new CA a rotation made: its fingerprint and where its key and certificate are kept."""
        return self.data.get("new_ca", {})

    def _time(self, key: str) -> dt.datetime | None:
        value = self.data.get(key)
        return value if isinstance(value, dt.datetime) else None

    def node(self, name: str) -> HostRecord:
        return HostRecord(self.data.get("nodes", {}).get(name, {}))

    def client(self, key: str) -> HostRecord:
        return HostRecord(self.data.get("clients", {}).get(key, {}))

    def hosts(self) -> list[HostRecord]:
        return [HostRecord(r) for group in ("nodes", "clients") for r in self.data.get(group, {}).values()]

    def leaf_done_at(self) -> dt.datetime | None:
        """When the last host finished its leaf step."""
        times = [t for t in (host.done_at("leaf") for host in self.hosts()) if t is not None]
        return max(times) if times else None


def opened(rotation_id: str, kind: str, phase: str, started: dt.datetime, **extra: Any) -> dict[str, Any]:
    """A new rotation's record, as `start` writes it."""
    return {"id": rotation_id, "kind": kind, "phase": phase, "started": started, **extra}


def history_entry(record: dict[str, Any], finished: dt.datetime, outcome: str) -> dict[str, Any]:
    """What history keeps of a finished rotation (never a key, only where the new CA's files are)."""
    entry = {key: value for key, value in record.items() if key in ("id", "kind", "started", "new_ca")}
    return entry | {"finished": finished, "outcome": outcome}
