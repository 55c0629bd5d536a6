"""Keys made where they are used (`key_on_node`, a client's `key_on_host`): only a CSR leaves the host.

For each node the leaf step (core.rotation.node_leaves, core.rotation.deliveries.ssh) then:
1. has the node make its new key with `openssl` under `<certs_dir>/.certrotate-newkey-<rotation id>/`
   (umask 077, so the key is 0600 from its first byte; given the owner of the key it will
   replace; a directory, which CockroachDB's certs-dir loader skips) and print a CSR for it;
2. has the signer sign that CSR and checks the certificate like any other (core.signers.issue),
   keeping only the certificate beside the rotation's files;
3. backs up node.key and node.crt, renames the new key over node.key and uploads node.crt in
   the same step, reloads once and verifies; a failure restores both from the backup.
No node private key is ever read by certrotate, so none exists on the operator's machine,
in a preview, or in the state file. A re-run finds the key (and the certificate) again.
An SSH-delivered client with `key_on_host = true` goes the same way with client.<user>.key
and client.<user>.crt in its certs_dir, followed by its restart.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from core import files, pki
from core.config.inventory import ClientConfig, NodeConfig
from core.config.workspace import LeafFiles, _leaf_lifetime
from core.errors import StepFailed
from core.pki.certs_dir import NODE_CERT, NODE_KEY, client_cert_name, client_key_name
from core.pki.keys import KEY_TYPES
from core.pki.subjects import client_subject, node_subject
from core.remote import remote_files
from core.remote.ssh import HostSession
from core.rotation.context import Run
from core.signers.issue import issue_for_csr

NO_OPENSSL = 3  # the exit status our key command uses when the node has no openssl


def wanted(run: Run, node: NodeConfig) -> bool:
    """Per node `key_on_node`, else the cluster's."""
    return node.key_on_node if node.key_on_node is not None else run.inventory.cluster.key_on_node


def staging_dir(run: Run, certs_dir: str) -> str:
    return posixpath.join(certs_dir.rstrip("/"), f".certrotate-newkey-{run.rid}")


def preview_lines(run: Run, host: str, certs_dir: str, key_name: str = NODE_KEY, cert_name: str = NODE_CERT) -> list[str]:
    return [f"make a new key in {staging_dir(run, certs_dir)}/ with openssl on {host} (it never leaves the host) "
            "and send back a CSR", f"rename it over {certs_dir.rstrip('/')}/{key_name} with the new {cert_name}"]


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


def key_and_csr_command(run: Run, certs_dir: str, key_name: str, subject: x509.Name,
                        sans: list[x509.GeneralName]) -> str:
    """One shell script: make the key once (0600 from the first byte, owned like the key it replaces), print its CSR."""
    directory = staging_dir(run, certs_dir)
    key = posixpath.join(directory, key_name)
    current = posixpath.join(certs_dir.rstrip("/"), key_name)
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
    csr = make_key_and_csr(run, run.session(node), node.name, node.certs_dir, NODE_KEY, subject, sans,
                           setting="key_on_node = false for this node")
    certificate = issue_for_csr(
        ca, csr=csr, profile=profile, subject=subject, sans=sans,
        lifetime=_leaf_lifetime(ca, run.inventory.cluster.node_lifetime_days, now), now=now,
        label=f"the new {NODE_CERT} of {node.name}",
        request_path=run.ws.rotation_dir(run.rid) / "requests" / f"{node.name}.node.csr",
        ocsp_url=run.inventory.cluster.ocsp_url)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    files.write_public(cert_path, pem, overwrite=True)
    return LeafFiles(pem, None, pki.sha256_fingerprint(certificate))


def make_key_and_csr(run: Run, session: HostSession, host: str, certs_dir: str, key_name: str, subject: x509.Name,
                     sans: list[x509.GeneralName], *, setting: str) -> x509.CertificateSigningRequest:
    """The host makes (or finds again) its new key and prints a CSR for it; only the CSR comes back."""
    result = session.run(key_and_csr_command(run, certs_dir, key_name, subject, sans))
    if result.exit_status == NO_OPENSSL:
        raise StepFailed(f"{host} has no openssl, which is needed to make its key there; install it "
                         f"(e.g. apt-get install openssl) or set {setting}.")
    if not result.ok:
        raise StepFailed(f"{host}: making the new key with openssl failed (exit {result.exit_status}"
                         + (f": {result.stderr.strip()[:200]}" if result.stderr.strip() else "") + ").")
    try:
        return x509.load_pem_x509_csr(result.stdout.encode())
    except ValueError:
        raise StepFailed(f"{host}: openssl did not print a CSR for the new key.") from None


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


def switch_key(run: Run, host: str, certs_dir: str, session: HostSession, backup_id: str, *,
               key_name: str = NODE_KEY, cert_name: str = NODE_CERT) -> None:
    """The key and its certificate backed up, then the host's new key renamed over the key; a no-op once done."""
    base = certs_dir.rstrip("/")
    remote_files.backup_files(session, [posixpath.join(base, key_name), posixpath.join(base, cert_name)], backup_id)
    directory = staging_dir(run, certs_dir)
    staged = posixpath.join(directory, key_name)
    q = shlex.quote
    result = session.run(f"set -e; if [ -s {q(staged)} ]; then mv -f {q(staged)} {q(posixpath.join(base, key_name))}; fi; "
                         f"rmdir {q(directory)} 2>/dev/null || true")
    if not result.ok:
        raise StepFailed(f"{host}: renaming the new key over {key_name} failed (exit {result.exit_status}).")


def client_leaf(run: Run, client: ClientConfig, ca, label: str) -> LeafFiles | None:
    """client.<user>.crt for a key the client's host makes itself (`key_on_host`); None in a dry run."""
    directory = run.ws.rotation_dir(run.rid) / "clients" / f"{client.user}@{client.ssh_host}"
    cert_path = directory / client_cert_name(client.user)
    staged = _staged_certificate(cert_path, ca)
    if staged is not None:
        return staged
    if run.dry_run:
        return None
    assert client.certs_dir is not None
    now = pki.utcnow()
    subject = client_subject(run.inventory.cluster.client_subject, client.user)
    csr = make_key_and_csr(run, run.session(client), label, client.certs_dir, client_key_name(client.user), subject, [],
                           setting="key_on_host = false for this client")
    certificate = issue_for_csr(
        ca, csr=csr, profile=pki.CLIENT_PROFILE, subject=subject, sans=[],
        lifetime=_leaf_lifetime(ca, run.inventory.cluster.client_lifetime_days, now), now=now,
        label=f"the new {cert_path.name} of {label}",
        request_path=run.ws.rotation_dir(run.rid) / "requests" / f"client.{client.user}@{client.ssh_host}.csr",
        ocsp_url=run.inventory.cluster.ocsp_url)
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    files.write_public(cert_path, pem, overwrite=True)
    return LeafFiles(pem, None, pki.sha256_fingerprint(certificate))
