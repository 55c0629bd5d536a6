"""The certificate profile of `cockroach cert`, checked field by field."""

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from core import pki
from core.errors import BadInput
from core.pki import keys

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(scope="module")
def ca():
    return pki.issue_ca(now=NOW)


def ext(cert, cls):
    return cert.extensions.get_extension_for_class(cls)


def test_ca_is_a_cockroach_ca(ca):
    cert = ca.certificate
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Cockroach"
    constraints = ext(cert, x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 1
    assert ext(cert, x509.KeyUsage).value.key_cert_sign
    assert ext(cert, x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_before_utc == NOW - dt.timedelta(hours=24)
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=3660)


def test_node_certificate_has_node_principal_and_split_sans(ca):
    node = pki.issue_node(ca, ["n1.example.com", "10.0.0.1", "::1", "localhost"], now=NOW)
    cert = node.certificate
    assert pki.common_name(cert) == "node"
    sans = ext(cert, x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1.example.com", "localhost"]
    assert [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)] == ["10.0.0.1", "::1"]
    assert set(ext(cert, x509.ExtendedKeyUsage).value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not ext(cert, x509.BasicConstraints).value.ca
    assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == ext(ca.certificate, x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=5 * 366)
    assert cert.issuer == ca.certificate.subject


def test_client_certificate_is_client_auth_only(ca):
    cert = pki.issue_client(ca, "maxroach", now=NOW).certificate
    assert pki.common_name(cert) == "maxroach"
    assert list(ext(cert, x509.ExtendedKeyUsage).value) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_serials_are_random_128_bit(ca):
    serials = {pki.issue_client(ca, "u", key_type="ecdsa-p256", now=NOW).certificate.serial_number for _ in range(20)}
    assert len(serials) == 20
    assert all(0 < s < 2**128 for s in serials)
    assert max(s.bit_length() for s in serials) > 100


def test_leaf_never_outlives_its_ca():
    short_ca = pki.issue_ca(now=NOW, lifetime=dt.timedelta(days=30), key_type="ecdsa-p256")
    with pytest.raises(BadInput, match="after the CA itself expires"):
        pki.issue_node(short_ca, ["localhost"], now=NOW)


def test_expired_ca_cannot_issue():
    old_ca = pki.issue_ca(now=NOW - dt.timedelta(days=400), lifetime=dt.timedelta(days=365), key_type="ecdsa-p256")
    with pytest.raises(BadInput, match="expired"):
        pki.issue_client(old_ca, "root", now=NOW, lifetime=dt.timedelta(hours=1))


@pytest.mark.parametrize(
    "key_type,cls,size",
    [("rsa-3072", rsa.RSAPrivateKey, 3072), ("ecdsa-p256", ec.EllipticCurvePrivateKey, 256), ("ecdsa-p384", ec.EllipticCurvePrivateKey, 384)],
)
def test_key_types(key_type, cls, size):
    key = keys.generate_private_key(key_type)
    assert isinstance(key, cls) and key.key_size == size
    assert keys.describe_key_type(key) == key_type


def test_ed25519_is_refused_with_a_reason():
    with pytest.raises(BadInput, match="CockroachDB"):
        keys.check_key_type("ed25519")


def test_rsa_keys_are_pkcs1_unless_pkcs8_is_asked(ca):
    assert ca.key_pem().startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert ca.key_pem(pkcs8=True).startswith(b"-----BEGIN PRIVATE KEY-----")


def test_encrypted_ca_key_round_trips_and_wrong_passphrase_is_a_sentence(ca):
    pem = keys.private_key_pem(ca.key, passphrase=b"correct horse")
    assert b"ENCRYPTED" in pem
    assert keys.key_matches_certificate(keys.load_private_key(pem, "ca.key", b"correct horse"), ca.certificate.public_key())
    with pytest.raises(BadInput, match="passphrase for ca.key is wrong"):
        keys.load_private_key(pem, "ca.key", b"wrong")
    with pytest.raises(BadInput, match="encrypted"):
        keys.load_private_key(pem, "ca.key")


@pytest.mark.parametrize("damage", ["d", "dmp1", "dmq1", "iqmp"])  # p·q ≠ n the parser refuses itself
def test_a_damaged_rsa_key_is_refused_with_a_sentence(damage):
    """OpenSSL's slow key check is skipped, so a flipped bit must still be caught before anything is signed."""
    numbers = rsa.generate_private_key(65537, 2048).private_numbers()
    fields = {name: getattr(numbers, name) for name in ("p", "q", "d", "dmp1", "dmq1", "iqmp")}
    fields[damage] ^= 1 << 77
    damaged = rsa.RSAPrivateNumbers(**fields, public_numbers=numbers.public_numbers)
    pem = keys.private_key_pem(damaged.private_key(unsafe_skip_rsa_key_validation=True))
    with pytest.raises(BadInput, match="ca.key is a damaged RSA private key") as caught:
        keys.load_private_key(pem, "ca.key")
    assert "PRIVATE KEY" not in str(caught.value)
    intact = rsa.RSAPrivateNumbers(**{**fields, damage: getattr(numbers, damage)}, public_numbers=numbers.public_numbers)
    assert keys.load_private_key(keys.private_key_pem(intact.private_key()), "ca.key").private_numbers() == numbers


def test_repr_never_shows_the_key(ca):
    text = repr(ca)
    assert "PRIVATE" not in text and "key=" not in text


@pytest.mark.parametrize("user", ["../root", "a/b", ".hidden", "x\x00y", "", "two words", "a\\b"])
def test_hostile_user_names_are_refused(ca, user):
    with pytest.raises(BadInput):
        pki.issue_client(ca, user, key_type="ecdsa-p256", now=NOW)


@pytest.mark.parametrize("address", ["not a host", "a..b", "-bad.example.com", "foo.*.example.com", ""])
def test_bad_addresses_are_refused(address):
    with pytest.raises(BadInput):
        pki.subject_alternative_names([address])


def test_wildcard_and_ipv6_addresses():
    names = pki.subject_alternative_names(["*.db.example.com", "[::1]"])
    assert names[0] == x509.DNSName("*.db.example.com")
    assert names[1].value.compressed == "::1"
