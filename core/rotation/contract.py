"""A plan is a contract: what a preview shows is what the run does, byte for byte.

- The rotation's new CA is made once, at `start` (`stage_new_cas`); its key is written 0600
  in the operator's workspace. A preview and every run find it there, so two previews and
  the run name the same CA. New leaves are staged once per rotation in
  `local_certs_dir/rotations/<id>/` the first time a preview or run needs them
  (core.config.workspace), so the preview's sha256 values are the run's.
- A preview (`advance --dry-run`, the wizard's `p` and `n`) gets a short digest of its plan
  and is remembered in `rotations/<id>/preview.json` (on the operator's side: no host and
  not the state file is touched).
- The run compares every host's actions with that preview before it acts on the host, and
  says which host differs and how; at the end of each step it journals the digest of what
  it executed and says whether that is the previewed one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core import files, pki
from core.config.record import RotationRecord
from core.config.state import State
from core.config.workspace import Workspace
from core.errors import CertRotateError
from core.rotation import kinds
from core.rotation.authority import Authority, authority_for
from core.rotation.model import Progress
from core.signers import select as signer_select

if TYPE_CHECKING:
    from core.rotation.context import Run

PREVIEW_FILE = "preview.json"
PLAN_LINE = "plan"  # the `host` of the progress line that names the executed plan's digest
DIGEST_LENGTH = 12


# -- the new CA, made once at start -------------------------------------------------------------


@dataclass(frozen=True)
class NewCaFiles:
    key_path: Path
    cert_path: Path
    common_name: str


def new_ca_files(ws: Workspace, authority: Authority, first_install: bool, rotation_id: str) -> NewCaFiles:
    """Where a rotation's new CA lives: a first install's at the CA key itself, a rotation's beside it."""
    cert_path = ws.rotation_dir(rotation_id) / authority.bundle_file
    if first_install:
        return NewCaFiles(authority.key_path, cert_path, authority.common_name)
    return NewCaFiles(authority.new_key_path(rotation_id), cert_path, f"{authority.common_name} {rotation_id}")


def make_new_ca(ws: Workspace, authority: Authority, first_install: bool, rotation_id: str) -> pki.Issued:
    """The rotation's new CA: the one made at start (found again), or made now and written.

    Where its key lives is the signer's (core.signers.select): a key file (0600, encrypted when the
    current one is), a key made inside the token, or the organisation's own new CA (`--new-ca`)."""
    where = new_ca_files(ws, authority, first_install, rotation_id)
    cluster = ws.cluster
    label = cluster.pkcs11_key_label or ""
    return signer_select.rotation_ca(ws, key_path=where.key_path, cert_path=where.cert_path,
                                     key_label=label if first_install else f"{label}-{rotation_id}",
                                     key_type=cluster.key_type, lifetime=dt.timedelta(days=cluster.ca_lifetime_days),
                                     now=pki.utcnow(), common_name=where.common_name, dry_run=False,
                                     current_key=None if first_install else authority.key_path)


def stage_new_cas(state: State) -> None:
    """At `start`: make the new CA(s) the rotation will roll out, and record them, before any preview."""
    record = RotationRecord(state.rotation)
    kind, rotation_id = kinds.get(record.kind), record.id
    if not (kind.rotates_ca or kind.installs_new_bundle):
        return
    ws = Workspace(state.base_dir, state.inventory.cluster)
    authority = authority_for(ws, kind.authority)
    ca = make_new_ca(ws, authority, kind.first_install, rotation_id)
    where = new_ca_files(ws, authority, kind.first_install, rotation_id)
    if record.note_new_ca(ca.fingerprint, ws.relative(where.key_path), ws.relative(where.cert_path)):
        state.record("new CA", at=pki.utcnow(), path=ws.relative(where.cert_path), sha256=ca.fingerprint)
    if kind.first_install and state.inventory.cluster.has_client_ca:
        make_new_ca(ws, authority_for(ws, "client"), True, rotation_id)
    if kind.new_ca == "replace" and state.inventory.cluster.has_client_ca:  # a recovery replaces every CA
        make_new_ca(ws, authority_for(ws, "client"), False, rotation_id)


# -- digests and the last preview -----------------------------------------------------------------


def digest(plan: dict[str, list[str]]) -> str:
    """A short fingerprint of a plan: every host's files (with their sha256) and commands, in order."""
    canonical = json.dumps({host: lines for host, lines in sorted(plan.items()) if lines}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:DIGEST_LENGTH]


def _preview_path(ws: Workspace, rotation_id: str) -> Path:
    return ws.rotation_dir(rotation_id) / PREVIEW_FILE


def remember_preview(ws: Workspace, rotation_id: str, phase: str, plan: dict[str, list[str]]) -> str:
    """Keep the preview's plan beside the rotation's files; return its digest."""
    plan_digest = digest(plan)
    document = {"phase": phase, "digest": plan_digest, "made": pki.utcnow().isoformat(), "plan": plan}
    path = _preview_path(ws, rotation_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    files.write_public(path, json.dumps(document, indent=1).encode(), overwrite=True)
    return plan_digest


def last_preview(ws: Workspace, rotation_id: str) -> dict | None:
    try:
        document = json.loads(_preview_path(ws, rotation_id).read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and isinstance(document.get("plan"), dict) else None


def why_different(previewed: list[str], now: list[str]) -> str:
    """One clause on how a host's actions differ from the preview's."""
    if not now:
        return "nothing left to do on it (already done since the preview)"
    if not previewed:
        return f"the preview had nothing for it; now: {now[0]}"
    missing = [line for line in previewed if line not in now]
    added = [line for line in now if line not in previewed]
    if added:
        return f"now {added[0]}" + (f" instead of {missing[0]}" if missing else "")
    return f"no longer {missing[0]}"


class Contract:
    """What one real run compares with the last preview, host by host, and what it journals at each step's end."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.preview = None if run.dry_run else last_preview(run.ws, run.rid)
        self.executed: dict[str, list[str]] = {}
        self._said: set[str] = set()

    def before_host(self, host: str, step: str, lines: list[str]) -> None:
        """Called before a host's actions are applied: say so when they are not what the preview showed."""
        with self.run.lock:  # hosts run in threads
            so_far = self.executed.setdefault(host, [])
            so_far.extend(lines)
            so_far = list(so_far)
            preview = self.preview
            if preview is None or preview.get("phase") != step or host in self._said:
                return
            previewed = preview["plan"].get(host, [])
            # a host's actions may come in more than one part (its leaves, then its bundle): compare what came so far
            if previewed[:len(so_far)] == so_far and (so_far or not previewed):
                return
            self._said.add(host)
        why = why_different(previewed, so_far)
        self.run.report(Progress(host, step, "warning", f"differs from preview {preview['digest']}: {why}"))
        self.run.record(f"{step}: differs from preview", host=host, detail=why)

    def step_done(self, step: str) -> None:
        """The step's end: journal the digest of what it executed, and whether it is the previewed one."""
        if not self.executed:
            return
        executed, self.executed, self._said = digest(self.executed), {}, set()
        preview = self.preview
        if preview is not None and preview.get("phase") == step:
            same = preview["digest"] == executed
            note = "as previewed" if same else f"the last preview was {preview['digest']}"
        else:
            note = "no preview of this step"
        self.run.report(Progress(PLAN_LINE, step, "note", f"executed plan {executed} ({note})", heading=True))
        self.run.record(f"{step}: executed plan", detail=f"{executed} ({note})")


def safe_remember_preview(run: Run, phase: str, plan: dict[str, list[str]]) -> str:
    """remember_preview, but a preview whose file cannot be written still shows its digest."""
    try:
        return remember_preview(run.ws, run.rid, phase, plan)
    except (OSError, CertRotateError):
        return digest(plan)
