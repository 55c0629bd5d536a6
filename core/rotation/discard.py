"""What a rollback leaves behind on the operator's side, and what it cannot undo itself.

A rolled-back rotation's new CA will never sign anything: its key is removed, with its
certificate and every leaf the rotation staged (their keys too), so nothing abandoned can be
picked up later by mistake. The files it exported for clients delivered by hand are removed
from their export dirs as well, each only while it is still the file the rotation wrote.

certrotate cannot reach a client delivered by hand, so it cannot give that client its
previous files back: `manual_clients` says, per client, which files the rotation gave it and
where the operator finds the ones to give back (the rollback dialog shows it before, the
rollback prints it after).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from core.config.inventory import ClientConfig
from core.config.record import LEAF_CONFIRMED, TRUST_CONFIRMED, RotationRecord, client_key
from core.config.state import State
from core.config.workspace import Workspace
from core.pki.certs_dir import CA_CERT, client_cert_name, client_key_name
from core.rotation import kinds
from core.rotation.authority import authority_for
from core.rotation.contract import new_ca_files
from core.rotation.model import Progress

LOCAL = "this machine"  # the progress lines about the operator's own files
MANUAL = "by hand"  # a progress status: something only the operator can do
STEPS = ("trust", "leaf", "retire")


@dataclass(frozen=True)
class Exported:
    """One file a rotation exported for a client delivered by hand, as the journal recorded it."""

    step: str
    name: str
    sha256: str


def exported_files(state: State, client: ClientConfig) -> list[Exported]:
    """What this rotation wrote into the client's export dir, from the journal (latest write of each name)."""
    record = RotationRecord(state.rotation)
    started, label = record.started, client_key(client)
    written: dict[str, Exported] = {}
    for entry in state.journal:
        at = entry.get("at")
        if isinstance(started, dt.datetime) and isinstance(at, dt.datetime) and at < started:
            continue
        step, _, verb = str(entry.get("action", "")).partition(": ")
        if entry.get("host") == label and verb == "write" and step in STEPS and entry.get("path"):
            name = Path(str(entry["path"])).name
            written[name] = Exported(step, name, str(entry.get("sha256", "")))
    return list(written.values())


def _previous_copy(ws: Workspace, user: str, name: str) -> str:
    """Where the operator finds the file a client had before the rotation, or that certrotate keeps none."""
    if name == CA_CERT:
        return f"{name} from {ws.relative(ws.bundle_path)} (the bundle from before the rotation, which the rollback puts back)"
    if name in (client_cert_name(user), client_key_name(user)) and (ws.local_certs_dir / name).exists():
        return f"{name} from {ws.relative(ws.local_certs_dir / name)}"
    return f"{name} as it had it before (certrotate keeps no copy)"


def manual_clients(state: State) -> list[tuple[str, str]]:
    """(client, sentence) per client delivered by hand: what it was given, and what to give back by hand."""
    ws = Workspace(state.base_dir, state.inventory.cluster)
    record = RotationRecord(state.rotation)
    lines = []
    for client in state.inventory.clients:
        if client.delivered_over_ssh:
            continue
        label = client_key(client)
        exported = exported_files(state, client)
        if not exported:
            lines.append((label, "nothing was exported for it in this rotation; it keeps its files."))
            continue
        host = record.client(label)
        delivered = host.confirmed(TRUST_CONFIRMED) or host.confirmed(LEAF_CONFIRMED)
        names = ", ".join(f.name for f in exported)
        returns = ", ".join(_previous_copy(ws, client.user, f.name) for f in exported)
        given = (f"you confirmed it has the rotation's {names}" if delivered else
                 f"the rotation exported {names} for it, not confirmed as delivered; if you gave it those files")
        lines.append((label, f"{given}, give it back its previous files by hand (certrotate cannot reach it): "
                             f"{returns}; then restart it."))
    return lines


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def abandoned_ca_files(state: State) -> list[Path]:
    """The new CA keys and certificates of the rotation in flight that nothing will ever use; never a key the
    inventory names (a first install's CA key is the cluster's ca_key and stays)."""
    record = RotationRecord(state.rotation)
    kind = kinds.lookup(record.kind)
    ws = Workspace(state.base_dir, state.inventory.cluster)
    kept = {ws.ca_key_path.resolve()} | ({ws.client_ca_key_path.resolve()} if ws.client_ca_key_path else set())
    paths: list[Path] = []
    if kind is None or kind.first_install:
        return []  # a first install's CA is the cluster's own ca_key: the next `start init` uses it again
    for noted in (record.new_ca, record.new_client_ca):
        paths += [ws.base_dir / noted[field] for field in ("key", "cert") if noted.get(field)]
    if kind.rotates_ca or kind.installs_new_bundle:
        authorities = {kind.authority} | ({"client"} if kind.new_ca == "replace" and ws.client_ca_key_path else set())
        for which in sorted(authorities):
            where = new_ca_files(ws, authority_for(ws, which), False, record.id)
            paths += [where.key_path, where.cert_path]
    unique = list(dict.fromkeys(path.absolute() for path in paths))
    return [path for path in unique if path.resolve() not in kept]


def discard(state: State, report) -> list[str]:
    """Remove what the rolled-back rotation made on the operator's side; return the paths removed (for history).

    Call it before the rotation is closed: it reads the rotation's record and journal.
    """
    ws = Workspace(state.base_dir, state.inventory.cluster)
    record = RotationRecord(state.rotation)
    removed: list[str] = []
    keys = [path for path in abandoned_ca_files(state) if path.suffix == ".key" and _remove(path)]
    certs = [path for path in abandoned_ca_files(state) if path.suffix != ".key" and _remove(path)]
    removed += [ws.relative(path) for path in keys + certs]
    if keys or certs:
        what = (f"the abandoned new CA key {', '.join(ws.relative(p) for p in keys)}" if keys else
                "the abandoned new CA's certificate")
        cert_text = f" and its certificate {', '.join(ws.relative(p) for p in certs)}" if keys and certs else ""
        report(Progress(LOCAL, "rollback", "ok", f"removed {what}{cert_text}", heading=True))
    staged = ws.rotation_dir(record.id) if record.id else None
    if staged is not None and staged.is_dir():
        shutil.rmtree(staged)
        removed.append(ws.relative(staged) + "/")
        report(Progress(LOCAL, "rollback", "ok", f"removed {ws.relative(staged)}/: the certificates and keys the "
                        "rotation had staged", heading=True))
    for client in state.inventory.clients:
        if client.delivered_over_ssh:
            continue
        removed += _remove_exports(ws, state, client, report)
    cluster = state.inventory.cluster
    if cluster.signer == "pkcs11" and record.new_ca:
        # certrotate never deletes a key inside the token; the operator decides (the label names the rotation)
        report(Progress(LOCAL, "rollback", "warning", f"the new CA's key {cluster.pkcs11_key_label or ''}-{record.id} "
                        "stays in the token; delete it there if nothing else should ever use it", heading=True))
    for label, sentence in manual_clients_after(state):
        report(Progress(label, "rollback", MANUAL, sentence))
    return removed


def manual_clients_after(state: State) -> list[tuple[str, str]]:
    """The manual clients' sentences as the rollback says them (the export names come from the journal)."""
    return [(label, sentence) for label, sentence in manual_clients(state)
            if not sentence.startswith("nothing was exported")]


def _remove_exports(ws: Workspace, state: State, client: ClientConfig, report) -> list[str]:
    """The files this rotation exported for `client`, each while it is still the one it wrote."""
    directory = ws.export_dir(client.user)
    removed, changed = [], []
    for exported in exported_files(state, client):
        path = directory / exported.name
        seen = _sha256(path)
        if seen is None:
            continue
        if exported.sha256 and seen != exported.sha256:
            changed.append(exported.name)
            continue
        _remove(path)
        removed.append(exported.name)
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    label = client_key(client)
    if removed:
        report(Progress(LOCAL, "rollback", "ok", f"removed the files exported for {label} from "
                        f"{ws.relative(directory)}/: {', '.join(removed)}", heading=True))
    if changed:
        report(Progress(LOCAL, "rollback", "warning", f"kept {', '.join(changed)} in {ws.relative(directory)}/: "
                        "changed since the rotation exported it", heading=True))
    return [ws.relative(directory / name) for name in removed]
