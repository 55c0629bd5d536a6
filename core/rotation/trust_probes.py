"""The trust probes of one run: throwaway client certificates made once, and the served leaf checked
in the same handshake.

Proving that a node trusts (or no longer trusts) a CA takes a TLS handshake with a client
certificate of that CA. The certificate is made once per CA for the whole run, with a P-256
key: quick to make, quick to sign with, and accepted by CockroachDB and PostgreSQL whatever
the CA's own key type. A node that refuses P-256 client certificates ("unsupported
certificate", "certificate required", a bare handshake failure) tells nothing about the CA,
so the probe is made again at once with an RSA-2048 certificate of the same CA, and that
node gets RSA probes for the rest of the run.

The same handshake shows which leaf the node serves, so a trust or retire step needs no
probes of its own for that: the `serves` of an ExpectTrust is checked on the probe's own
handshake, and a step whose node served nothing known before takes what the first probe
saw and requires every later probe of that node to see the same.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence, TypeVar

from core.errors import CertRotateError
from core.pki import Issued
from core.remote import probes

P256 = "ecdsa-p256"
RSA = "rsa-2048"
# Refusals that may be about the probe's key type rather than about the CA that signed it.
KEY_TYPE_REFUSALS = ("unsupported certificate", "certificate required", "handshake failure")

Probe = TypeVar("Probe")
Verdict = TypeVar("Verdict")


def side_by_side(probe: Callable[[Probe], Verdict], probes_: Sequence[Probe]) -> list[Verdict]:
    """Every probe at once, the results in order: each one mostly waits on the node (its reload,
    its backend's start), so a node's second probe need not wait for its first. The first
    error in order is raised, after every probe has ended."""
    if len(probes_) < 2:
        return [probe(p) for p in probes_]
    with ThreadPoolExecutor(max_workers=len(probes_), thread_name_prefix="trust-probe") as pool:
        futures = [pool.submit(probe, p) for p in probes_]
    return [future.result() for future in futures]


class ProbeClients:
    """The run's probe client certificates, one per (CA, key type), made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._made: dict[tuple[int, str], tuple[Issued, Issued]] = {}
        self._rsa_only: set[str] = set()  # addresses that refused a P-256 client certificate

    def client(self, ca: Issued, address: str) -> Issued:
        return self._client(ca, RSA if address in self._rsa_only else P256)

    def _client(self, ca: Issued, key_type: str) -> Issued:
        key = (id(ca), key_type)  # the entry holds `ca`, so its id is not reused while the run lasts
        with self._lock:
            entry = self._made.get(key)
        if entry is None or entry[0] is not ca:
            made = probes.make_probe_client(ca, key_type=key_type)
            with self._lock:
                entry = self._made.setdefault(key, (ca, made))
        return entry[1]

    def verdict(self, address: str, ca: Issued, trusted: bool, *, timeout: float,
                serves: str | None = None) -> probes.TrustResult | str:
        """probes.wait_for_trust with this run's client for `address`, once more with RSA when P-256 may be the cause."""
        client = self.client(ca, address)
        try:
            verdict = probes.wait_for_trust(address, ca, trusted, timeout=timeout, client=client, serves=serves)
        except CertRotateError as error:
            if address in self._rsa_only or not _may_be_the_key_type(str(error)):
                raise
            return self._again_with_rsa(address, ca, trusted, serves, error)
        if address in self._rsa_only or not _inconclusive(verdict, trusted):
            return verdict
        return self._again_with_rsa(address, ca, trusted, serves, verdict)

    def _again_with_rsa(self, address: str, ca: Issued, trusted: bool, serves: str | None,
                        first: probes.TrustResult | str | CertRotateError) -> probes.TrustResult | str:
        """One RSA probe, no waiting: the reload was already given its time by the P-256 probes."""
        try:
            verdict = probes.wait_for_trust(address, ca, trusted, timeout=0, client=self._client(ca, RSA),
                                            serves=serves)
        except CertRotateError:
            verdict = None
        if verdict is None or _inconclusive(verdict, trusted):
            if isinstance(first, CertRotateError):
                raise first
            return first
        with self._lock:
            self._rsa_only.add(address)
        return verdict


def _may_be_the_key_type(text: str) -> bool:
    return any(reason in text for reason in KEY_TYPE_REFUSALS)


def _inconclusive(verdict: probes.TrustResult | str, trusted: bool) -> bool:
    """The wanted verdict did not come, or came as a refusal that may concern the key type only."""
    if isinstance(verdict, str):
        return _may_be_the_key_type(verdict)
    if verdict.trusted != trusted:
        return verdict.alert in KEY_TYPE_REFUSALS
    return not trusted and verdict.alert in KEY_TYPE_REFUSALS


class ServedInPlan:
    """What one node's plan saw it serve, so that every probe of the plan checks the same leaf."""

    def __init__(self) -> None:
        self._seen: dict[str, str] = {}

    def expected(self, address: str, serves: str | None) -> str | None:
        return serves or self._seen.get(address)

    def saw(self, address: str, fingerprint: str | None) -> None:
        if fingerprint:
            self._seen.setdefault(address, fingerprint)
