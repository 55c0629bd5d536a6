"""A Kubernetes-delivered cluster on disk (state file, CA, bundle) for the Kubernetes tests; no cluster needed."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import tomli_w

from core import files, pki

CERTROTATE = [sys.executable, "-m", "tui"]
FUTURE = "2099-01-01T00:00:00Z"

TWO_REGIONS = [
    {"name": "n1", "region": "eu", "addresses": ["cockroachdb-0.cockroachdb.eu.svc.cluster.local", "10.1.0.1"]},
    {"name": "n2", "region": "eu", "addresses": ["cockroachdb-1.cockroachdb.eu.svc.cluster.local", "10.1.0.2"]},
    {"name": "n3", "region": "us", "kubernetes_namespace": "us",
     "addresses": ["cockroachdb-0.cockroachdb.us.svc.cluster.local", "10.2.0.1"]},
]


def write_cluster(directory: Path, nodes: list[dict] | None = None, *, clients: list[dict] | None = None,
                  cluster: dict | None = None) -> Path:
    """A state file with delivery = kubernetes, its CA key and the local bundle; returns the state path."""
    ca = pki.issue_ca(key_type="ecdsa-p256", lifetime=dt.timedelta(days=3660), common_name="Cockroach CA k8s")
    files.write_private(directory / "safe" / "ca.key", ca.key_pem(), overwrite=True)
    files.write_public(directory / "certs" / "ca.crt", ca.cert_pem, overwrite=True)
    document = {
        "cluster": {"name": "k8s", "profile": "cockroach", "key_type": "ecdsa-p256", "delivery": "kubernetes",
                    "kubernetes_namespace": "eu", "kubernetes_secret": "cockroachdb-node",
                    "kubernetes_statefulset": "cockroachdb", **(cluster or {})},
        "nodes": nodes if nodes is not None else TWO_REGIONS,
        "clients": clients if clients is not None else [{"user": "root"}],
    }
    path = directory / "certrotate.toml"
    path.write_text(tomli_w.dumps(document))
    return path


def run_cli(state_path: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([*CERTROTATE, *args, "--state", str(state_path)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ})
