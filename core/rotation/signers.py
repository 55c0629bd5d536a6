"""The CAs a rotation works with: the new one, the old one, who signs the leaves, and the bundles.

A CA rotation (`start ca`, `start client-ca`) makes its new CA once, beside the rotation's
files, and finds it again on every later run; the bundle from before the rotation is kept
there too, so the old CA is known even after the local bundle was replaced by the
combined one. Which CA (node CA or client CA) is replaced is the run's `Authority`
(core.rotation.authority); these functions take it, and the run's kind, as data.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import NamedTuple

from core import files, pki
from core.pki import bundle
from core.pki.certs_dir import CLIENT_CA_CERT
from core.rotation import contract
from core.rotation.authority import authority_for
from core.rotation.context import Run
from core.signers import select as signer_select


class RotationBundles(NamedTuple):
    """A CA rotation's bundles: the combined one it rolls out, the one from before, and its new CA."""

    combined: bytes
    before: bundle.Bundle
    new_ca: pki.Issued


def new_ca(run: Run) -> pki.Issued:
    """The rotation's new CA (kind ca, client-ca), or the cluster's first CA (kind init); made once, found again."""
    where = contract.new_ca_files(run.ws, run.authority, run.kind.first_install, run.rid)  # made at start
    key_path, cert_path = where.key_path, where.cert_path
    ca = contract.make_new_ca(run.ws, run.authority, run.kind.first_install, run.rid)
    if not run.dry_run and run.record_view().note_new_ca(ca.fingerprint, run.ws.relative(key_path),
                                                         run.ws.relative(cert_path)):
        run.record("new CA", path=run.ws.relative(cert_path), sha256=ca.fingerprint)
        run.save()
    _probe_with(run, ca)
    return ca


def _probe_with(run: Run, ca) -> None:
    """Throwaway probe certificates need a CA certrotate signs with itself (not an organisation's CFSSL or manual CA)."""
    if signer_select.can_probe(ca):
        run.executor.probe_cas[ca.fingerprint] = ca


def old_ca(run: Run, old_bundle: bundle.Bundle) -> pki.Issued | None:
    """The CA whose key the operator holds (cluster.ca_key or client_ca_key), to prove trust in it with a probe."""
    issued = signer_select.probe_ca(run.ws, run.authority.key_path, old_bundle)
    if issued is not None:
        _probe_with(run, issued)
    return issued


def signing_ca(run: Run) -> pki.Issued:
    """The CA that signs node.crt: the new one of a CA rotation or first install, else the current one."""
    if run.kind.new_ca and run.kind.authority == "node":
        return new_ca(run)
    ca = run.ws.current_ca()
    _probe_with(run, ca)
    return ca


def rotation_bundles(run: Run) -> RotationBundles:
    """The combined bundle, the bundle from before the rotation, and the new CA, of a CA rotation.

    The bundle from before is kept beside the rotation's files, so that it is known even
    after the local ca.crt was replaced by the combined one.
    """
    ca = new_ca(run)
    authority = run.authority
    before_path = run.ws.rotation_dir(run.rid) / authority.before_name
    if before_path.exists():
        before = before_path.read_bytes()
    else:
        before = files.read_bytes(authority.local_bundle, f"The local {authority.bundle_file} bundle")
        if not run.dry_run:
            files.write_public(before_path, before, overwrite=False)
    old_bundle = bundle.parse_bundle(before, run.ws.relative(authority.local_bundle))
    combined = bundle.combine(ca.cert_pem, before)
    if not run.dry_run:
        run.record_view().note_bundles(old_bundle.fingerprints, hashlib.sha256(combined).hexdigest())
    return RotationBundles(combined, old_bundle, ca)


# -- the leaf step's CAs ------------------------------------------------------------------------


@dataclass(frozen=True)
class LeafSigners:
    """The CAs that sign a leaf step's certificates, each made or found once."""

    node_ca: pki.Issued | None  # signs node.crt; None in a client CA rotation, which keeps node.crt
    client_ca: pki.Issued  # signs client certificates and, in the split layout, client.node.crt
    rotated: RotationBundles | None  # a CA rotation's bundles (its new CA signs one of the two above)


def leaf_signers(run: Run) -> LeafSigners:
    """Who signs the leaf step. A client CA rotation needs no node CA key (which may be kept offline)."""
    rotated = rotation_bundles(run) if run.kind.rotates_ca else None
    if run.kind.authority == "client":
        node_ca = None
    elif rotated is not None:
        node_ca = rotated.new_ca
    else:
        node_ca = signing_ca(run)
    client_ca = _client_signing_ca(run, node_ca, rotated)
    _probe_with(run, client_ca)  # a recovery proves nodes accept its certificates
    return LeafSigners(node_ca, client_ca, rotated)


def _client_signing_ca(run: Run, node_ca: pki.Issued | None, rotated: RotationBundles | None) -> pki.Issued:
    """The CA that signs client certificates and client.node.crt: the client CA when the cluster has one."""
    if not run.inventory.cluster.has_client_ca:
        assert node_ca is not None  # only a client CA rotation has none, and it needs a client CA
        return node_ca
    if run.kind.authority == "client":
        assert rotated is not None
        return rotated.new_ca
    if run.kind.first_install:
        return _first_client_ca(run)
    if run.kind.new_ca == "replace":
        return _replacement_client_ca(run)
    return run.ws.current_client_ca()


def _first_client_ca(run: Run) -> pki.Issued:
    """A first install with a client CA makes it beside the CA (its key at cluster.client_ca_key)."""
    return contract.make_new_ca(run.ws, authority_for(run.ws, "client"), True, run.rid)


def _replacement_client_ca(run: Run) -> pki.Issued:
    """A recovery replaces every CA at once: the client CA's successor, beside the rotation's files."""
    authority = authority_for(run.ws, "client")
    where = contract.new_ca_files(run.ws, authority, False, run.rid)
    ca = contract.make_new_ca(run.ws, authority, False, run.rid)
    key_path, cert_path = where.key_path, where.cert_path
    if not run.dry_run and run.record_view().note_new_client_ca(ca.fingerprint, run.ws.relative(key_path),
                                                                run.ws.relative(cert_path)):
        run.record("new client CA", path=run.ws.relative(cert_path), sha256=ca.fingerprint)
        run.save()
    return ca


def leaf_trust_bundles(run: Run, signers: LeafSigners) -> tuple[bytes, bytes]:
    """(what node.crt is checked against, what client certificates are checked against) during the leaf step."""
    kind = run.kind
    if kind.installs_new_bundle and signers.node_ca is not None:
        server = signers.node_ca.cert_pem
    elif kind.rotates_ca and kind.authority == "node":
        assert signers.rotated is not None
        server = signers.rotated.combined
    else:
        server = run.ws.read_bundle()
    if not run.inventory.cluster.has_client_ca:
        return server, server
    if kind.installs_new_bundle:
        return server, signers.client_ca.cert_pem
    if kind.rotates_ca and kind.authority == "client":
        assert signers.rotated is not None
        return server, signers.rotated.combined
    return server, files.read_bytes(run.ws.client_bundle_path, f"The local {CLIENT_CA_CERT} bundle")
