"""Typed views of the `[rotation]` record: the only place that knows its keys.

The record is the nested dict the state file keeps under `[rotation]` (TOML tables), so a
rotation resumes on any machine with the file. Code reads and writes it through these views
instead of string keys scattered around: `RotationRecord` for the rotation itself, and
`HostRecord` for one node's or client's progress. The views hold no data of their own;
they read and change the dict in place, so the state file sees every change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

DONE = "done"
FAILED = "failed"
TRUST_CONFIRMED = "trust_confirmed"  # a manually delivered client has the new CA bundle and was restarted
LEAF_CONFIRMED = "leaf_confirmed"  # ... has its new certificate and was restarted
# The confirmation each phase collects from manually delivered clients (the wizard's checklist).
CONFIRM_KEYS = {"trust": TRUST_CONFIRMED, "wait": TRUST_CONFIRMED, "leaf": LEAF_CONFIRMED, "retire": LEAF_CONFIRMED}


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
    """One node's or client's progress: per step done/failed, when, and what it was given.

    Host steps run in threads while another thread saves the state file, so every write
    happens under the run's lock when one is given.
    """

    def __init__(self, data: dict[str, Any], lock: Any = None):
        self.data = data
        self.lock = lock or contextlib.nullcontext()

    def _set(self, **values: Any) -> None:
        with self.lock:
            self.data.update(values)

    def mark_done(self, step: str, at: dt.datetime, **values: Any) -> None:
        """The step is done with these values; a rerun that finds it so leaves its first time alone."""
        if self.done(step) and all(self.data.get(key) == value for key, value in values.items()):
            return
        self._set(**{step: DONE, f"{step}_at": at}, **values)

    def mark_failed(self, step: str) -> None:
        self._set(**{step: FAILED})

    def confirm(self, confirm_key: str) -> None:
        self._set(**{confirm_key: True})

    @property
    def leaf_fingerprint(self) -> str | None:
        """The certificate the leaf step gave the host (node.crt, or the client's certificate)."""
        return self.data.get("leaf_fingerprint")

    def bundle_sha256(self, step: str) -> str | None:
        """The sha256 of the bundle a trust or retire step put on the node."""
        return self.data.get(f"{step}_bundle_sha256")

    def served_before(self, key: str = "served_before") -> str | None:
        """What the node served before the rotation touched it (per probe: core.rotation.model.Probe)."""
        return self.data.get(key)

    def note_served_before(self, fingerprint: str | None, key: str = "served_before") -> None:
        """Kept from the first look only: a rerun must not take the new certificate for the old one."""
        if fingerprint and key not in self.data:
            self._set(**{key: fingerprint})

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

    @last_error.setter
    def last_error(self, sentence: str | None) -> None:
        """The failure the wizard and `status` show until the next run clears it (None or "" clears it)."""
        if sentence:
            self.data["last_error"] = sentence
        else:
            self.data.pop("last_error", None)

    def note_failure(self, sentence: str, step: str, at: dt.datetime) -> None:
        """Which step failed, when, and the sentence (cleared by the next run that succeeds)."""
        self.last_error = sentence
        self.data.update(last_error_step=step, last_error_at=at)

    def clear_failure(self) -> None:
        for key in ("last_error", "last_error_step", "last_error_at"):
            self.data.pop(key, None)

    @property
    def last_error_step(self) -> str | None:
        return self.data.get("last_error_step")

    @property
    def last_error_at(self) -> dt.datetime | None:
        return self._time("last_error_at")

    @property
    def new_ca(self) -> dict[str, str]:
        """The new CA a rotation made: its fingerprint and where its key and certificate are kept."""
        return self.data.get("new_ca", {})

    def note_new_ca(self, fingerprint: str, key: str, cert: str) -> bool:
        """Record the rotation's new CA once; False when it was recorded already."""
        if "new_ca" in self.data:
            return False
        self.data["new_ca"] = {"fingerprint": fingerprint, "key": key, "cert": cert}
        return True

    @property
    def new_client_ca(self) -> dict[str, str]:
        """A recovery's new client CA, when it replaced an expired one (cluster.client_ca_key)."""
        return self.data.get("new_client_ca", {})

    def note_new_client_ca(self, fingerprint: str, key: str, cert: str) -> bool:
        if "new_client_ca" in self.data:
            return False
        self.data["new_client_ca"] = {"fingerprint": fingerprint, "key": key, "cert": cert}
        return True

    @property
    def recovery(self) -> dict[str, Any]:
        """What a recovery saw and will do (`why`), and which nodes and clients had expired."""
        return self.data.get("recovery", {})

    @property
    def wait_days(self) -> int | None:
        """A shortened wait the operator acknowledged at start (None: leaf_delay_days)."""
        return self.data.get("wait_days")

    @property
    def wait_reason(self) -> str:
        return self.data.get("wait_reason", "")

    @property
    def old_ca_fingerprints(self) -> list[str]:
        return list(self.data.get("old_ca_fingerprints", ()))

    def note_bundles(self, old_ca_fingerprints: list[str], combined_sha256: str) -> None:
        """The CAs trusted before the rotation (kept from its first run) and the combined bundle rolled out."""
        self.data.setdefault("old_ca_fingerprints", old_ca_fingerprints)
        self.data["combined_bundle_sha256"] = combined_sha256

    @property
    def ui_certificate(self) -> dict[str, Any] | None:
        return self.data.get("ui_certificate")

    def enter(self, phase: str) -> None:
        self.data["phase"] = phase

    def enter_wait(self, trust_done_at: dt.datetime, wait_until: dt.datetime) -> None:
        self.data.update(trust_done_at=trust_done_at, wait_until=wait_until, phase="wait")

    def node_data(self, name: str) -> dict[str, Any]:
        """One node's record, made when first asked for (the dict the state file keeps)."""
        return self.data.setdefault("nodes", {}).setdefault(name, {})

    def client_data(self, key: str) -> dict[str, Any]:
        return self.data.setdefault("clients", {}).setdefault(key, {})

    def region_data(self, region: str) -> dict[str, Any]:
        """A Kubernetes region's record: its Secret steps ("written", "confirmed", "done") and manifests."""
        return self.data.setdefault("kubernetes", {}).setdefault(region, {})

    @property
    def regions(self) -> dict[str, dict[str, Any]]:
        return self.data.get("kubernetes", {})

    def _time(self, key: str) -> dt.datetime | None:
        value = self.data.get(key)
        return value if isinstance(value, dt.datetime) else None

    def node(self, name: str) -> HostRecord:
        return HostRecord(self.data.get("nodes", {}).get(name, {}))

    def client(self, key: str) -> HostRecord:
        return HostRecord(self.data.get("clients", {}).get(key, {}))

    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.data.get("nodes", {})

    def clients(self) -> dict[str, dict[str, Any]]:
        return self.data.get("clients", {})

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
