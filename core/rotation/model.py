"""The rotation's vocabulary: the actions a step is made of, the gates it stops at, its progress lines.

The engine plans actions, an executor applies them. Planning never touches the network, so
dry-run is printing a plan, resume is planning again from fresh observations, and the
decisions are tested with plain values. Everything here is plain data: the wizard imports it
before its first paint.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.files import FileContent


class Status(enum.StrEnum):
    """A host step's status as the rotation record keeps it."""

    DONE = "done"
    FAILED = "failed"


DONE = Status.DONE.value
FAILED = Status.FAILED.value


@dataclass(frozen=True)
class WriteFiles:
    """Replace these files on a host as one change, backing up the originals first."""

    host: str
    files: tuple[FileContent, ...]
    backup_id: str

    def describe(self) -> list[str]:
        return [f"write {f.path} (sha256 {f.sha256[:16]}…, mode {f.mode:04o})" for f in self.files]


@dataclass(frozen=True)
class RunCommand:
    host: str
    command: str
    purpose: str  # "reload" or "restart"

    def describe(self) -> list[str]:
        return [f"run `{self.command}` ({self.purpose})"]


@dataclass(frozen=True)
class ExpectServed:
    """The node must serve exactly this certificate (proof that a reload took)."""

    host: str
    address: str
    fingerprint: str
    direct_tls: bool = False  # True: http_addr (the DB Console speaks TLS at once); False: SQL port

    def describe(self) -> list[str]:
        over = " over direct TLS" if self.direct_tls else ""
        return [f"check {self.address} serves certificate {self.fingerprint[:16]}…{over}"]


@dataclass(frozen=True)
class ExpectTrust:
    """The node must (or must no longer) accept client certificates of this CA; with `serves`, an accepted
    probe's handshake must also show that leaf (without, it must show the leaf the plan's first probe saw)."""

    host: str
    address: str
    ca_fingerprint: str
    trusted: bool
    serves: str | None = None

    def describe(self) -> list[str]:
        verb = "trusts" if self.trusted else "no longer trusts"
        also = f" and serves certificate {self.serves[:16]}…" if self.serves and self.trusted else ""
        return [f"check {self.address} {verb} CA {self.ca_fingerprint[:16]}…{also}"]


@dataclass(frozen=True)
class ExpectAccepted:
    """The node must accept this very client certificate (client.node.crt: how a node dials the others)."""

    host: str
    address: str
    user: str
    fingerprint: str
    cert_pem: bytes = field(repr=False)
    key_pem: bytes = field(repr=False)

    def describe(self) -> list[str]:
        return [f"check {self.address} accepts client.{self.user}.crt {self.fingerprint[:16]}…"]


@dataclass(frozen=True)
class ExportFiles:
    """Files for a client without SSH: left on the operator's disk for manual delivery."""

    host: str
    directory: Path
    files: tuple[FileContent, ...]

    def describe(self) -> list[str]:
        return [f"export {self.directory / f.path} (sha256 {f.sha256[:16]}…, mode {f.mode:04o})" for f in self.files]


@dataclass(frozen=True)
class SwapLinkedDir:
    """A certs dir that is a symlink to a directory: these files go into a new version of it, then the link moves
    (core.remote.versioned_dirs); the version the link had is kept for the rollback."""

    host: str
    certs_dir: str
    files: tuple[FileContent, ...]
    backup_id: str  # names the new version: <certs_dir name>.<backup_id>

    def describe(self) -> list[str]:
        return [f"write {f.path} (sha256 {f.sha256[:16]}…, mode {f.mode:04o}) into a new version of {self.certs_dir}"
                for f in self.files] + [f"point the symlink {self.certs_dir} at the new version"]


Action = WriteFiles | RunCommand | ExpectServed | ExpectTrust | ExpectAccepted | ExportFiles | SwapLinkedDir


def describe_plan(actions: list[Action]) -> list[str]:
    return [line for action in actions for line in action.describe()]


# -- where a node proves what it serves -----------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """Where a node proves which certificate it serves, and where the record keeps what it served before."""

    address_field: str  # the NodeConfig field: sql_addr or http_addr
    direct_tls: bool  # http_addr speaks TLS at once; the SQL port first takes PostgreSQL's SSLRequest
    served_before_key: str  # the node record's field for the fingerprint served before the rotation
    what: str  # how sentences name what it serves: "certificate", "UI certificate"
    listener: str  # how sentences name who serves it: "it", "its DB Console"
    # The listener must answer before anything is uploaded: a console that does not answer could
    # not prove its new certificate afterwards (a wrong http_addr or a stopped node is found first).
    must_answer: bool = False

    def address(self, node) -> str | None:
        return getattr(node, self.address_field)


SQL_PROBE = Probe("sql_addr", direct_tls=False, served_before_key="served_before", what="certificate", listener="it")
HTTP_PROBE = Probe("http_addr", direct_tls=True, served_before_key="ui_served_before", what="UI certificate",
                   listener="its DB Console", must_answer=True)
PROBES = (SQL_PROBE, HTTP_PROBE)


# -- where a run stops, and what it reports ---------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """Why `advance` stopped: a date to wait for, or confirmations only the operator can give."""

    kind: str  # "schedule" or "confirm"
    reason: str
    until: dt.datetime | None = None
    items: tuple[str, ...] = ()


@dataclass
class Outcome:
    phase: str
    gate: Gate | None = None
    finished: bool = False
    plan: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    digest: str = ""  # a dry run's plan digest (core.rotation.contract)
    held_by: Gate | None = None  # a dry run past a gate: the gate that still holds the step shown


@dataclass(frozen=True)
class Progress:
    """One line of progress: which host, which step, and how it went."""

    host: str
    step: str
    status: str  # "running", "ok", "skipped", "failed", "waiting"
    detail: str = ""
    heading: bool = False  # a line about a group of hosts (a region), not one more host


Reporter = Callable[[Progress], None]


def silent(_: Progress) -> None:
    pass
