"""The signer layer's pure parts: subject policies, the lock-out preflight, signatures made elsewhere,
the checks every answer of a CA gets, and the inventory's signer fields."""

from __future__ import annotations

import dataclasses
import re
import datetime as dt
import textwrap

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from core import pki
from core.config import state as state_mod
from core.config.inventory import ClientConfig, ClusterConfig, Inventory, NodeConfig
from core.errors import BadInput, SecretNeeded, StepFailed
from core.pki import keys
from core.pki.subjects import client_subject, node_subject, subject_problem
from core.signers import credentials
from core.signers.identity import lockout_problems
from core.signers.issue import issue_leaf
from core.signers.request import CertificateRequest, make_csr
from core.signers.resign import sign_builder_with

NOW = pki.utcnow()


@pytest.fixture(scope="module")
def ca():
    return pki.issue_ca(key_type="ecdsa-p256")


def _inventory(**cluster) -> Inventory:
    nodes = (NodeConfig(ssh_host="10.0.0.1", name="n1", certs_dir="/c", addresses=("n1.example.com", "10.0.0.1"),
                        sql_addr="10.0.0.1:26257"),)
    return Inventory(ClusterConfig(name="prod", **cluster), nodes, (ClientConfig(user="app"),))


# -- subject policies and the lock-out preflight -------------------------------------------------


def test_a_subject_template_is_written_most_significant_first():
    name = client_subject("O=Example,OU=DB,CN={user}", "app")
    assert [(a.oid._name, a.value) for a in name] == [("organizationName", "Example"),
                                                     ("organizationalUnitName", "DB"), ("commonName", "app")]
    assert node_subject(None, "n1") == x509.Name([x509.NameAttribute(x509.oid.NameOID.ORGANIZATION_NAME, "Cockroach"),
                                                  x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "node")])


@pytest.mark.parametrize("template,client,problem", [
    ("O=Example,CN=x", True, "needs CN={user}"),
    ("O=Example", False, "exactly one CN"),
    ("O=Example,Q=1,CN=node", False, "not a subject attribute"),
    ("O=Example,CN={host}", False, "placeholders are {user} and {node}"),
    ("O=Example,OU=DB,CN={user}", True, None),
])
def test_subject_templates_are_checked(template, client, problem):
    found = subject_problem(template, client=client)
    assert (found is None) if problem is None else (problem in found)


def test_the_preflight_refuses_a_node_subject_without_cn_node():
    problems = lockout_problems(_inventory(node_subject="O=Example,CN=db-{node}"))
    assert len(problems) == 1 and "n1's node.crt CN=db-n1" in problems[0]


def test_the_preflight_refuses_a_client_cn_that_is_not_the_user():
    problems = lockout_problems(_inventory(client_subject="O=Example,CN=svc-{user}"))
    assert len(problems) == 1 and "client.app.crt CN=svc-app" in problems[0] and "app could not log in" in problems[0]


def test_the_preflight_wants_every_address_clients_use_among_the_sans():
    inventory = _inventory()
    assert lockout_problems(inventory) == []
    moved = dataclasses.replace(inventory.nodes[0], sql_addr="10.9.9.9:26257", http_addr="console.example.com:8080")
    problems = lockout_problems(dataclasses.replace(inventory, nodes=(moved,)))
    assert [p.split(" host ")[0] for p in problems] == ["n1's sql_addr", "n1's http_addr"]
    wildcard = dataclasses.replace(moved, addresses=("*.example.com", "10.9.9.9"))
    assert lockout_problems(dataclasses.replace(inventory, nodes=(wildcard,))) == []


# -- signatures made elsewhere (a token) -------------------------------------------------------


@pytest.mark.parametrize("key_type", ["rsa-2048", "ecdsa-p384"])
def test_a_signature_made_outside_cryptography_is_swapped_into_the_certificate(key_type):
    outside = pki.generate_private_key(key_type)  # stands for the key inside the token

    def token_sign(tbs: bytes) -> bytes:
        if key_type.startswith("rsa"):
            return outside.sign(tbs, padding.PKCS1v15(), hashes.SHA256())
        return outside.sign(tbs, ec.ECDSA(hashes.SHA256()))

    certificate = pki.build_certificate(
        pki.CA_PROFILE, common_name="Token CA", key=outside.public_key(), lifetime=dt.timedelta(days=30), now=NOW,
        self_signer=lambda builder: sign_builder_with(builder, outside.public_key(), token_sign, source="the token"))
    certificate.verify_directly_issued_by(certificate)
    assert certificate.public_key() == outside.public_key()


def test_a_token_that_signs_with_another_key_is_caught():
    outside, other = pki.generate_private_key("ecdsa-p256"), pki.generate_private_key("ecdsa-p256")
    with pytest.raises(StepFailed, match="does not verify"):
        pki.build_certificate(pki.CA_PROFILE, common_name="x", key=outside.public_key(), lifetime=dt.timedelta(days=1),
                              now=NOW, self_signer=lambda b: sign_builder_with(
                                  b, outside.public_key(), lambda tbs: other.sign(tbs, ec.ECDSA(hashes.SHA256())),
                                  source="the token"))


# -- every answer is checked -------------------------------------------------------------------


class _Answering:
    """A CA whose answers are made by a function: stands in for an organisation's CA gone wrong."""

    name = "test"

    def __init__(self, ca, answer):
        self.ca, self.answer, self.certificate = ca, answer, ca.certificate

    def sign(self, request: CertificateRequest) -> x509.Certificate:
        return self.answer(self.ca, request)


def _request_args(user="app"):
    key = pki.generate_private_key("ecdsa-p256")
    return key, dict(profile=pki.NODE_PROFILE, subject=node_subject(None, "n1"),
                     sans=pki.subject_alternative_names(["n1.example.com", "10.0.0.1"]), key=key,
                     lifetime=dt.timedelta(days=30), now=NOW, label="the new node.crt of n1")


def _answer(**changes):
    def answer(ca, request):
        base = dict(common_name=None, subject=request.subject, key=request.public_key, lifetime=request.lifetime,
                    now=request.now, issuer=ca, sans=list(request.sans))
        profile = changes.pop("profile", request.profile)
        base.update(changes)
        return pki.build_certificate(profile, **base)
    return answer


def test_a_right_answer_passes(ca):
    _, args = _request_args()
    issued = issue_leaf(_Answering(ca, _answer()), **args)
    assert pki.common_name(issued.certificate) == "node"


@pytest.mark.parametrize("changes,problem", [
    ({"sans": pki.subject_alternative_names(["n1.example.com"])}, "lacks the SAN(s) 10.0.0.1"),
    ({"subject": client_subject(None, "someone")}, "has CN=someone, not CN=node"),
    ({"profile": pki.CLIENT_PROFILE}, "lacks the serverAuth"),
    ({"profile": pki.CA_PROFILE}, "is a CA certificate"),
    ({"key": pki.generate_private_key("ecdsa-p256").public_key()}, "certifies another key"),
])
def test_a_wrong_answer_is_refused_in_one_sentence(ca, changes, problem):
    _, args = _request_args()
    with pytest.raises(BadInput, match=re.escape(problem)):
        issue_leaf(_Answering(ca, _answer(**changes)), **args)


def test_an_answer_from_another_ca_is_refused(ca):
    other = pki.issue_ca(key_type="ecdsa-p256", common_name="Other CA")
    _, args = _request_args()
    with pytest.raises(BadInput, match="does not chain"):
        issue_leaf(_Answering(ca, lambda _, request: _answer()(other, request)), **args)


# -- secrets -----------------------------------------------------------------------------------


def test_a_passphrase_file_gives_its_first_line_only(tmp_path, monkeypatch):
    monkeypatch.delenv("CERTROTATE_CA_KEY_PASSPHRASE", raising=False)
    credentials.forget()
    path = tmp_path / "pass"
    path.write_bytes(b"s3cret \nsecond line\n")
    try:
        assert credentials.passphrase() is None
        credentials.give_from_file(credentials.PASSPHRASE, path)
        assert credentials.passphrase() == b"s3cret"
    finally:
        credentials.forget()
    monkeypatch.setenv("CERTROTATE_CA_KEY_PASSPHRASE", "from-env")
    assert credentials.passphrase() == b"from-env"


def test_a_missing_passphrase_is_a_secret_needed_naming_the_ways_to_give_it(ca):
    pem = keys.private_key_pem(ca.key, passphrase=b"pw")
    with pytest.raises(SecretNeeded) as raised:
        keys.load_private_key(pem, "safe/ca.key")
    assert raised.value.exit_code == 2 and raised.value.secret == "passphrase" and not raised.value.wrong
    assert "CERTROTATE_CA_KEY_PASSPHRASE" in str(raised.value) and "pw" not in str(raised.value)
    assert keys.load_private_key(keys.private_key_pem(ca.key), "plain.key", b"about")  # a plain key ignores it


# -- the inventory's signer fields -------------------------------------------------------------

BASE = textwrap.dedent("""\
    [cluster]
    name = "prod"
    {cluster}

    [[nodes]]
    name = "n1"
    ssh_host = "10.0.0.1"
    certs_dir = "/var/lib/cockroach/certs"

    [[clients]]
    user = "app"
    {client}
    """)


def _load(tmp_path, cluster="", client=""):
    path = tmp_path / "certrotate.toml"
    path.write_text(BASE.format(cluster=cluster, client=client))
    return state_mod.load(path)


def test_a_pkcs11_signer_without_its_token_fields_is_named_with_its_line(tmp_path):
    with pytest.raises(BadInput, match=r"line 3: cluster.signer is \"pkcs11\", which needs pkcs11_module too"):
        _load(tmp_path, cluster='signer = "pkcs11"')


def test_key_on_host_needs_an_ssh_host(tmp_path):
    with pytest.raises(BadInput, match="key_on_host needs ssh_host"):
        _load(tmp_path, client="key_on_host = true")


def test_signer_fields_round_trip_and_defaults_stay_out_of_the_file(tmp_path):
    state = _load(tmp_path)
    state_mod.save(state)
    text = (tmp_path / "certrotate.toml").read_text()
    assert "signer" not in text and "key_on" not in text and "cfssl" not in text
    state = _load(tmp_path, cluster='signer = "manual"\nkey_on_node = true\nnode_subject = "O=Example,CN=node"')
    state_mod.save(state)
    again = state_mod.load(tmp_path / "certrotate.toml").inventory.cluster
    assert (again.signer, again.key_on_node, again.node_subject) == ("manual", True, "O=Example,CN=node")
