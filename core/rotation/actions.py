"""Plain actions a rotation step is made of: the engine plans them, an executor applies them.

Planning never touches the network, so dry-run is printing a plan, resume is planning again
from fresh observations, and the decisions are tested with plain values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class FileContent:
    """One file to write. `content` may be a private key: it never appears in repr()."""

    path: str
    content: bytes = field(repr=False)
    mode: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


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
    """The node must (or must no longer) accept client certificates of this CA."""

    host: str
    address: str
    ca_fingerprint: str
    trusted: bool

    def describe(self) -> list[str]:
        verb = "trusts" if self.trusted else "no longer trusts"
        return [f"check {self.address} {verb} CA {self.ca_fingerprint[:16]}…"]


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


Action = WriteFiles | RunCommand | ExpectServed | ExpectTrust | ExpectAccepted | ExportFiles


def describe_plan(actions: list[Action]) -> list[str]:
    return [line for action in actions for line in action.describe()]
