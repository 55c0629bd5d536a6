"""Issue N node certificates: certrotate in-process vs the OpenSSL procedure of CockroachDB's docs.

The docs' procedure runs, per node, `openssl genrsa`, `openssl req` and `openssl ca`
with a signing policy and an index database. We time the same work (key, certificate,
both files written) in-process. Run by hand:

    .venv/bin/python bench/bench_issue_nodes.py [--nodes 100]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from core import files, pki

CA_CNF = """\
[ ca ]
default_ca = CA_default

[ CA_default ]
default_days = 365
database = {dir}/index.txt
serial = {dir}/serial.txt
default_md = sha256
copy_extensions = copy
unique_subject = no

[ req ]
prompt = no
distinguished_name = distinguished_name
req_extensions = extensions
x509_extensions = extensions

[ distinguished_name ]
organizationName = Cockroach
commonName = Cockroach CA

[ extensions ]
keyUsage = critical,digitalSignature,nonRepudiation,keyEncipherment,keyCertSign
basicConstraints = critical,CA:true,pathlen:1

[ signing_policy ]
organizationName = supplied
commonName = optional

[ signing_node_req ]
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth,clientAuth
"""

NODE_CNF = """\
[ req ]
prompt = no
distinguished_name = distinguished_name
req_extensions = extensions

[ distinguished_name ]
organizationName = Cockroach
commonName = node

[ extensions ]
subjectAltName = critical,@san

[ san ]
DNS.1 = node{i}.example.com
IP.1 = 10.0.0.{i}
"""


def openssl_procedure(workdir: Path, nodes: int) -> float:
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=workdir)
    (workdir / "ca.cnf").write_text(CA_CNF.format(dir=workdir))
    (workdir / "index.txt").write_text("")
    (workdir / "serial.txt").write_text("01\n")
    run("genrsa", "-out", "ca.key", "2048")
    run("req", "-new", "-x509", "-config", "ca.cnf", "-key", "ca.key", "-out", "ca.crt", "-days", "3660", "-batch")
    start = time.perf_counter()
    for i in range(nodes):
        d = workdir / f"n{i}"
        d.mkdir()
        (d / "node.cnf").write_text(NODE_CNF.format(i=i % 250 + 1))
        run("genrsa", "-out", f"n{i}/node.key", "2048")
        run("req", "-new", "-config", f"n{i}/node.cnf", "-key", f"n{i}/node.key", "-out", f"n{i}/node.csr", "-batch")
        run("ca", "-config", "ca.cnf", "-keyfile", "ca.key", "-cert", "ca.crt", "-policy", "signing_policy",
            "-extensions", "signing_node_req", "-out", f"n{i}/node.crt", "-outdir", f"n{i}", "-in", f"n{i}/node.csr", "-batch")
    return time.perf_counter() - start


def certrotate_issue(workdir: Path, nodes: int, key_type: str) -> float:
    ca = pki.issue_ca(key_type=key_type)
    start = time.perf_counter()
    for i in range(nodes):
        issued = pki.issue_node(ca, [f"node{i}.example.com", f"10.0.0.{i % 250 + 1}"], key_type=key_type)
        files.write_private(workdir / f"n{i}" / "node.key", issued.key_pem(), overwrite=False)
        files.write_public(workdir / f"n{i}" / "node.crt", issued.cert_pem, overwrite=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100)
    nodes = parser.parse_args().nodes
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for sub in ("openssl", "rsa", "ecdsa"):
            (base / sub).mkdir()
        openssl_s = openssl_procedure(base / "openssl", nodes)
        rsa_s = certrotate_issue(base / "rsa", nodes, "rsa-2048")
        ec_s = certrotate_issue(base / "ecdsa", nodes, "ecdsa-p256")
    print(f"{nodes} node certificates")
    print(f"  openssl genrsa+req+ca (docs procedure): {openssl_s:7.2f} s")
    print(f"  certrotate, rsa-2048:                   {rsa_s:7.2f} s  ({rsa_s / openssl_s:.2f}x, target <= 0.5x)")
    print(f"  certrotate, ecdsa-p256:                 {ec_s:7.2f} s  ({ec_s / openssl_s:.3f}x)")


if __name__ == "__main__":
    main()
