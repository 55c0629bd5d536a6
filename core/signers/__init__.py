"""Signers: who signs the cluster's certificates, behind one small interface.

A rotation never signs by itself; it hands a `CertificateRequest` (the profile, the subject,
the SANs, a CSR carrying the public key, the validity) to the CA object of the cluster's
signer and gets a certificate back, which `core.signers.issue` checks before anything uses
it (key match, subject, SANs, EKU, validity, chain to the CA):

- `local`: the CA key in a file on the operator's machine, plain or encrypted PEM
  (`pki.Issued` is that CA; the passphrase comes from `core.signers.credentials`);
- `pkcs11`: the CA key inside an HSM or token, used through PKCS#11 (core.signers.token);
- `cfssl`: the organisation's CFSSL server signs CSRs over its authenticated API (core.signers.cfssl);
- `manual`: any other CA: a CSR file per certificate, the operator brings the signed
  certificates back (core.signers.manual).

`core.signers.select` picks the CA objects a rotation signs with; the rest of the engine
treats them like `pki.Issued` (`certificate`, `cert_pem`, `fingerprint`).
"""

SIGNERS = ("local", "pkcs11", "cfssl", "manual")
EXTERNAL_SIGNERS = ("cfssl", "manual")  # the organisation holds the CA: it also makes the new one
