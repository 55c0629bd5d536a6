"""Install a bring-your-own UI certificate for the DB Console (`certrotate start ui`).

CockroachDB's DB Console (HTTP, direct TLS on `http_addr`) serves `ui.crt`/`ui.key` from
the certs dir when both exist, else `node.crt`. Browsers do not trust the cluster's own
CA, so operators bring a certificate from a public or organisational CA. certrotate does
not issue it; it checks the pair, then rolls it out like a leaf, node by node, canary
first: upload `ui.key` (0600) and `ui.crt` (0644) after a backup, reload, and prove over
direct TLS on `http_addr` that the node serves exactly the new certificate. A node that
does not gets its previous files back, and the rotation stops.

Everything is checked before anything leaves the operator's machine
(core.rotation.kinds.ui_pair: `check_pair`, pure, returns one finding per check, which the
wizard shows and the CLI turns into its first failure's sentence). The pair is then copied
into the rotation's own directory, so a resumed run rolls out exactly what was checked,
whatever happens to the originals.

The wizard reads the kinds registry before its first frame, so the checks of the pair, what
reads certificates and keys (cryptography) and what changes nodes are imported in the
function that uses them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import files, pki
from core.config.inventory import NodeConfig
from core.config.record import rotation_id_for
from core.errors import BadInput
from core.rotation.kinds.base import Kind, _always

if TYPE_CHECKING:
    from core.config.state import State
    from core.rotation.kinds.ui_pair import UiPair
    from core.rotation.node_change import NodeChange

NAME = "ui"
PHASE = "leaf"  # one leaf-like phase; its backups are the leaf step's, which rollback restores
RECORD = "ui_certificate"


def staged_paths(ws, rotation_id: str) -> tuple[Path, Path]:
    from core.pki.certs_dir import UI_CERT, UI_KEY

    directory = ws.rotation_dir(rotation_id)
    return directory / UI_CERT, directory / UI_KEY


def start(state: State, *, cert_path: str | None = None, key_path: str | None = None,
          now: dt.datetime | None = None) -> dict[str, Any]:
    """Check the pair, keep a copy beside the rotation, and open a `ui` rotation (phase leaf)."""
    from core.config.workspace import Workspace
    from core.rotation.kinds.ui_pair import check_files

    checked = check_files(state, cert_path, key_path, now=now)
    if checked.problem:
        raise BadInput(checked.problem)
    pair = checked.pair
    assert pair is not None
    real_now = pki.utcnow()
    rotation_id = rotation_id_for(NAME, real_now)
    ws = Workspace(state.base_dir, state.inventory.cluster)
    staged_cert, staged_key = staged_paths(ws, rotation_id)
    files.write_private(staged_key, pair.key_pem, overwrite=True)
    files.write_public(staged_cert, pair.chain_pem, overwrite=True)
    state.rotation = {
        "id": rotation_id, "kind": NAME, "phase": PHASE, "started": real_now,
        RECORD: {
            "source_cert": cert_path or state.inventory.cluster.ui_cert,
            "source_key": key_path or state.inventory.cluster.ui_key,
            "cert": ws.relative(staged_cert),
            "fingerprint": pair.fingerprint,
            "subject": pair.leaf.subject.rfc4514_string(),
            "sans": pki.san_strings(pair.leaf),
            "not_after": pair.leaf.not_valid_after_utc,
        },
    }
    state.record("start", at=real_now, detail=f"{NAME} rotation {rotation_id}")
    state.record("UI certificate checked", at=real_now, path=ws.relative(staged_cert),
                 sha256=hashlib.sha256(pair.chain_pem).hexdigest(), detail=f"fingerprint {pair.fingerprint}")
    return state.rotation


def _staged_pair(run) -> UiPair:
    """The copy made at start, checked again: the inventory or the clock may have moved on since."""
    from core.findings import first_problem
    from core.rotation.kinds.ui_pair import UiPair, check_pair

    cert_file, key_file = staged_paths(run.ws, run.rid)
    cert_pem = files.read_bytes(cert_file, "The rotation's copy of the UI certificate")
    key_pem = files.read_bytes(key_file, "The rotation's copy of the UI key")
    source = run.ws.relative(cert_file)
    findings = check_pair(cert_pem, key_pem, cert_source=source, key_source=run.ws.relative(key_file), key_mode=None,
                          nodes=run.inventory.nodes, now=pki.utcnow())
    problem = first_problem(findings)
    if problem:
        raise BadInput(problem)
    pair = UiPair.read(cert_pem, key_pem, source)
    if pair.fingerprint != run.rotation.get(RECORD, {}).get("fingerprint"):
        raise BadInput(f"{source} is not the UI certificate this rotation started with; roll back and start again.")
    return pair


# -- per node -------------------------------------------------------------------------------------


def node_change(run, node: NodeConfig) -> NodeChange:
    """ui.key then ui.crt, and the proof: the node's http_addr serves exactly the new certificate."""
    from core.pki.certs_dir import UI_CERT, UI_KEY
    from core.rotation.model import HTTP_PROBE
    from core.rotation.node_change import NodeChange
    from core.rotation.plans import PRIVATE, PUBLIC

    pair = _staged_pair(run)
    return NodeChange(
        {UI_KEY: (pair.key_pem, PRIVATE), UI_CERT: (pair.chain_pem, PUBLIC)},
        serves=pair.fingerprint,
        probe=HTTP_PROBE,
        recorded={"ui_fingerprint": pair.fingerprint},
        done_text=f"serves the new UI certificate {pair.fingerprint[:16]}… on {node.http_addr}",
        journal="ui certificate",
    )


def _open(state: State, **options: Any) -> dict[str, Any]:
    return start(state, **options)


KIND = Kind(
    name=NAME,
    title="UI certificate",
    choice="UI certificate",
    summary="Your own DB Console certificate (public or organisational CA), checked, then node by node.",
    node_leaves=_always,
    open=_open,
    asks_for_files=True,
    node_change=node_change,
    leaf_title="Install the UI certificate",
    leaf_text=("Upload ui.crt and ui.key to every node, canary first, reload, and verify over direct TLS on its "
               "http_addr that it serves the new certificate; a node that does not gets its previous files back "
               "and the rotation stops."),
)
