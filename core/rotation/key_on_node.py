"""Node keys made on the node (`key_on_node = true`): only a CSR leaves it, only a certificate goes up.

For each node the leaf step (core.rotation.leaf_step) then:
1. has the node make its new key with `openssl` under `<certs_dir>/.certrotate-newkey-<rotation id>/`
   (umask 077, so the key is 0600 from its first byte; given the owner of the key it will
   replace; a directory, which CockroachDB's certs-dir loader skips) and print a CSR for it;
2. has the signer sign that CSR and checks the certificate like any other (core.signers.issue),
   keeping only the certificate beside the rotation's files;
3. backs up node.key and node.crt, renames the new key over node.key and uploads node.crt in
   the same step, reloads once and verifies; a failure restores both from the backup.
No node private key is ever read by certrotate, so none exists on the operator's machine,
in a preview, or in the state file. A re-run finds the key (and the certificate) again.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from core import files, pki
from core.config.inventory import NodeConfig
from core.config.workspace import LeafFiles, _leaf_lifetime
from core.errors import StepFailed
from core.pki.certs_dir import NODE_CERT, NODE_KEY
from core.pki.keys import KEY_TYPES
from core.pki.subjects import node_subject
from core.remote import remote_files
from core.remote.ssh import HostSession
from core.rotation.context import Run
from core.signers.issue import issue_for_csr

NO_OPENSSL = 3  # the exit status our key command uses when the node has no openssl


def wanted(run: Run, node: NodeConfig) -> bool:
    """Per node `key_on_node`, else the cluster's."""
    return node.key_on_node if node.key_on_node is not None else run.inventory.cluster.key_on_node


def staging_dir(run: Run, node: NodeConfig) -> str:
    return posixpath.join(node.certs_dir.rstrip("/"), f".certrotate-newkey-{run.rid}")


def preview_lines(run: Run, node: NodeConfig) -> list[str]:
    return [f"make a new key in {staging_dir(run, node)}/ with openssl on {node.name} (it never leaves the node) "
            "and send back a CSR", f"rename it over {node.certs_dir.rstrip('/')}/{NODE_KEY} with the new {NODE_CERT}"]


def _genpkey(key_type: str) -> str:
    family, param = KEY_TYPES[key_type]
    if family == "rsa":
        return f"openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:{param}"
    curve = {"secp256r1": "P-256", "secp384r1": "P-384"}[param.name]  # type: ignore[union-attr]
    return f"openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:{curve}"


def _subject_arg(name: x509.Name) -> str:
    short = {"countryName": "C", "stateOrProvinceName": "ST", "localityName": "L", "organizationName": "O",
             "organizationalUnitName": "OU", "commonName": "CN", "domainComponent": "DC", "serialNumber": "serialNumber"}
    parts = []
    for attribute in name:
        value = str(attribute.value).replace("\\", "\\\\").replace("/", "\\/")
        parts.append(f"{short.get(attribute.oid._name, attribute.oid.dotted_string)}={value}")
    return "/" + "/".join(parts)


def _san_arg(sans: list[x509.GeneralName]) -> str:
    items = [f"IP:{name.value}" if isinstance(name, x509.IPAddress) else f"DNS:{name.value}" for name in sans]
    return "subjectAltName=" + ",".join(items)


def key_and_csr_command(run: Run, node: NodeConfig, subject: x509.Name, sans: list[x509.GeneralName]) -> str:
    """One shell script: make the key once (0600 from the first byte, owned like node.key), print its CSR."""
    directory = staging_dir(run, node)
    key = posixpath.join(directory, NODE_KEY)
    current = posixpath.join(node.certs_dir.rstrip("/"), NODE_KEY)
    q = shlex.quote
    csr = f"openssl req -new -key {q(key)} -subj {q(_subject_arg(subject))}"
    if sans:
        csr += f" -addext {q(_san_arg(sans))}"
    return (
        f"command -v openssl >/dev/null 2>&1 || exit {NO_OPENSSL}; set -e; umask 077; mkdir -p {q(directory)}; "
        f"if [ ! -s {q(key)} ]; then {_genpkey(run.inventory.cluster.key_type)} -out {q(key + '.part')} 2>/dev/null; "
        f"mv -f {q(key + '.part')} {q(key)}; fi; "
        f"if [ -e {q(current)} ]; then chown --reference={q(current)} {q(directory)} {q(key)} 2>/dev/null || true; fi; "
        f"{csr}"
    )


def node_leaf(run: Run, node: NodeConfig, ca, *, now) -> LeafFiles | None:
    """node.crt for a key the node makes itself; None in a dry run (nothing is asked of the node)."""
    directory = run.ws.rotation_dir(run.rid) / "nodes" / node.name
    cert_path = directory / NODE_CERT
    staged = _staged_certificate(cert_path, ca)
    if staged is not None:
        return staged
    if run.dry_run:
        return None
    profile = pki.NODE_PROFILES[run.inventory.cluster.node_cert_layout]
    subject = node_subject(run.inventory.cluster.node_subject, node.name, with_cn=not run.inventory.cluster.split_node_certs)
    sans = pki.subject_alternative_names(list(node.addresses) or [node.ssh_host])
    session = run.session(node)
    result = session.run(key_and_csr_command(run, node, subject, sans))
    if result.exit_status == NO_OPENSSL:
        raise StepFailed(f"{node.name} has no openssl, which key_on_node needs to make the key there; install it "
                         "(e.g. apt-get install openssl) or set key_on_node = false for this node.")
    if not result.ok:
        raise StepFailed(f"{node.name}: making the new key with openssl failed (exit {result.exit_status}"
                         + (f": {result.stderr.strip()[:200]}" if result.stderr.strip() else "") + ").")
    try:
        csr = x509.load_pem_x509_csr(result.stdout.encode())
    except ValueError:
        raise StepFailed(f"{node.name}: openssl did not print a CSR for the new key.") from None
    certificate = issue_for_csr(
        ca, csr=csr, profile=profile, subject=subject, sans=sans,
        lifetime=_leaf_lifetime(ca, run.inventory.cluster.node_lifetime_days, now), now=now,
        label=f"the new {NODE_CERT} of {node.name}",
        request_path=run.ws.rotation_dir(run.rid) / "requests" / f"{node.name}.node.csr",
        ocsp_url=run.inventory.cluster.ocsp_url)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    files.write_public(cert_path, pem, overwrite=True)
    return LeafFiles(pem, None, pki.sha256_fingerprint(certificate))


def _staged_certificate(cert_path: Path, ca) -> LeafFiles | None:
    if not cert_path.exists():
        return None
    try:
        pem = cert_path.read_bytes()
        certificate = x509.load_pem_x509_certificate(pem)
        certificate.verify_directly_issued_by(ca.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return None
    return LeafFiles(pem, None, pki.sha256_fingerprint(certificate))


def switch_key(run: Run, node: NodeConfig, session: HostSession, backup_id: str) -> None:
    """node.key (and node.crt) backed up, then the node's new key renamed over node.key; a no-op once done."""
    base = node.certs_dir.rstrip("/")
    remote_files.backup_files(session, [posixpath.join(base, NODE_KEY), posixpath.join(base, NODE_CERT)], backup_id)
    directory = staging_dir(run, node)
    staged = posixpath.join(directory, NODE_KEY)
    q = shlex.quote
    result = session.run(f"set -e; if [ -s {q(staged)} ]; then mv -f {q(staged)} {q(posixpath.join(base, NODE_KEY))}; fi; "
                         f"rmdir {q(directory)} 2>/dev/null || true")
    if not result.ok:
        raise StepFailed(f"{node.name}: renaming the new key over {NODE_KEY} failed (exit {result.exit_status}).")
