"""The manual signer's gate: every CSR of the leaf step is out before any node changes.

With `signer = "manual"` the leaf step first asks for every certificate it will need
(writing the CSRs into the rotation's `requests/` folder) and stops at a gate naming the
certificates still missing; once they are all there and pass their checks, the rollout
runs as with any other signer (node by node, canary first). Nothing on a node changes
while a certificate is missing, so a half-signed set never reaches the cluster.
"""

from __future__ import annotations

from core import pki
from core.config.workspace import ensure_client_leaf
from core.errors import BadInput
from core.rotation.context import Run
from core.rotation.model import Gate
from core.rotation.node_leaves import node_leaves
from core.signers.manual import AwaitingCertificate

GATE_KIND = "certificates"


def awaiting_signatures(run: Run, node_ca, client_ca, *, nodes_too: bool, clients_too: bool) -> Gate | None:
    """A gate listing the signed certificates not yet back from the organisation's CA, or None."""
    if run.inventory.cluster.signer != "manual":
        return None
    missing: list[str] = []
    folder = None

    def ask(request) -> None:
        nonlocal folder
        try:
            request()
        except AwaitingCertificate as waiting:
            missing.append(waiting.certificate_path.name)
            folder = waiting.certificate_path.parent
        except BadInput as refused:
            raise BadInput(f"{refused} Replace that file with the certificate signed for the CSR beside it, then run "
                           "advance again.") from None

    for node in run.inventory.nodes if nodes_too else ():
        ask(lambda: node_leaves(run, node, node_ca, client_ca))
    for client in run.inventory.clients if clients_too else ():
        ask(lambda: ensure_client_leaf(run.ws, run.rid, client_ca, client.user, now=pki.utcnow(), dry_run=run.dry_run))
    if not missing:
        return None
    where = run.ws.relative(folder) if folder else "the rotation's requests folder"
    return Gate(GATE_KIND, f"{len(missing)} certificate(s) to be signed by your CA: sign each CSR in {where} and put "
                           "its certificate beside it (same name, .crt)", items=tuple(missing))
