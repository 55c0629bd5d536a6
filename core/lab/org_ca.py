"""An example organisational CA for the lab: the kind of PKI a DB Console certificate comes from.

Browsers do not trust a cluster's own CA, so operators bring a UI certificate from a public
CA or their organisation's (docs/README-ui-certificate.md). For rehearsals and tests this
module plays that CA: a root, an issuing intermediate, and UI certificates (serverAuth,
SANs of the nodes' addresses) served with the intermediate, as a real one would be.

    org = ExampleOrgCA()
    ui = org.issue_ui(["127.4.5.1", "127.4.5.2"])
    org.chain_pem(ui)          # ui.crt: the leaf, then the intermediate
    write_example_ui_pair(lab) # operator/ui/ + [cluster] ui_cert/ui_key (the demo does this)
"""

from __future__ import annotations

import datetime as dt
import tomllib
from typing import TYPE_CHECKING

import tomli_w
from cryptography.x509.oid import ExtendedKeyUsageOID

from core import pki
from core.files import write_private, write_public
from core.pki.bundle import join_pem

if TYPE_CHECKING:
    from core.lab.cluster import Lab

UI_PROFILE = pki.Profile("ui", is_ca=False, extended_key_usage=(ExtendedKeyUsageOID.SERVER_AUTH,))
KEY_TYPE = "ecdsa-p256"  # quick to make; the checks and the rollout do not care
UI_NAME = "console.example.org"


class ExampleOrgCA:
    """A root and an issuing intermediate, as a company PKI (or a public CA) has."""

    def __init__(self) -> None:
        self.root = pki.issue_ca(key_type=KEY_TYPE, common_name="Example Org Root CA")
        key = pki.generate_private_key(KEY_TYPE)
        cert = pki.build_certificate(pki.CA_PROFILE, common_name="Example Org Issuing CA", key=key,
                                     lifetime=dt.timedelta(days=365), now=pki.utcnow(), issuer=self.root)
        self.intermediate = pki.Issued(cert, key)

    def issue_ui(self, addresses: list[str], *, now: dt.datetime | None = None,
                 lifetime: dt.timedelta = dt.timedelta(days=90)) -> pki.Issued:
        """A UI certificate for `addresses` (and console.example.org), from the intermediate."""
        key = pki.generate_private_key(KEY_TYPE)
        cert = pki.build_certificate(UI_PROFILE, common_name=UI_NAME, key=key, lifetime=lifetime,
                                     now=now or pki.utcnow(), issuer=self.intermediate,
                                     sans=pki.subject_alternative_names([UI_NAME, *addresses]))
        return pki.Issued(cert, key)

    def chain_pem(self, leaf: pki.Issued) -> bytes:
        return join_pem([leaf.cert_pem, self.intermediate.cert_pem])


def write_example_ui_pair(lab: Lab) -> ExampleOrgCA:
    """operator/ui/: org-ca.crt (to import in a browser), ui.crt and ui.key (0600) covering every
    node, named in the state file's [cluster] ui_cert/ui_key. For a lab's fresh state file only."""
    org = ExampleOrgCA()
    leaf = org.issue_ui([node.address for node in lab.nodes])
    directory = lab.operator_dir / "ui"
    directory.mkdir(exist_ok=True)
    write_public(directory / "org-ca.crt", org.root.cert_pem, overwrite=True)
    write_public(directory / "ui.crt", org.chain_pem(leaf), overwrite=True)
    write_private(directory / "ui.key", leaf.key_pem(), overwrite=True)
    data = tomllib.loads(lab.state_path.read_text())
    data["cluster"].update(ui_cert="ui/ui.crt", ui_key="ui/ui.key")
    write_public(lab.state_path, tomli_w.dumps(data).encode(), overwrite=True)
    return org
