"""Proof from the client's side: a TLS handshake from the client's host, with the files it was given.

The nodes' probes prove what a node serves and trusts; they cannot prove that a client
host can really connect with what certrotate put in its certs dir (a key that does not
match, a CA bundle the client's OpenSSL cannot read, a firewall between the two). So
after every delivery to an SSH client (and its restart) certrotate runs, on that host,
from its certs dir:

- `openssl s_client -starttls postgres` against a node's sql_addr with client.<user>.crt
  and its key (client.<user>.key, else the DER client.<user>.key.pk8), verifying the node
  against ca.crt and its address or name, or else
- `psql` with sslmode=verify-full and the same files,

and records "proven", "failed" (with the tool's last words) or "unproven" (neither tool is
there, or no node has a sql_addr, with the reason) per client (core.rotation.proof_record).
A failed proof is a warning, not a stop: the nodes already verified their side, and the
operator decides at the retire gate. Nothing secret is sent: the files stay on the host.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass

from core import pki
from core.config.inventory import ClientConfig, NodeConfig
from core.config.profiles import profile_for
from core.config.record import client_key
from core.errors import CertRotateError
from core.pki.certs_dir import CA_CERT, client_cert_name, client_key_name
from core.pki.client_formats import pk8_name
from core.remote.ssh import HostSession
from core.rotation.context import Run
from core.rotation.model import Gate, Progress
from core.rotation.proof_record import FAILED, PROVEN, UNPROVEN, WAIVER_KEY, unproven_clients

MARK = "certrotate-proof:"
# Under TLS 1.3 a server refuses a client certificate only after the handshake, in an alert
# the client reads later; s_client must keep reading that long or it reports success.
ALERT_WAIT_SECONDS = 2
CONNECT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Proof:
    result: str  # PROVEN, FAILED or UNPROVEN
    detail: str
    tool: str = ""
    node: str = ""


def _host_and_port(sql_addr: str) -> tuple[str, str]:
    host, _, port = sql_addr.rpartition(":")
    return host.strip("[]"), port


def proof_script(certs_dir: str, user: str, node_addr: str, dbname: str, *, postgres_preamble: bool = True) -> str:
    """The POSIX shell that proves one client's files against one node; it prints a MARK line and the tool's tail."""
    host, port = _host_and_port(node_addr)
    try:
        ipaddress.ip_address(host)
        verify = f"-verify_ip {shlex.quote(host)}"
    except ValueError:
        verify = f"-verify_hostname {shlex.quote(host)}"
    cert, pem_key, der_key = client_cert_name(user), client_key_name(user), pk8_name(user)
    q = shlex.quote
    starttls = "-starttls postgres " if postgres_preamble else ""
    conninfo = (f"host={host} port={port} user={user} dbname={dbname} sslmode=verify-full sslrootcert={CA_CERT} "
                f"sslcert={cert} sslkey={pem_key} connect_timeout={CONNECT_TIMEOUT_SECONDS}")
    return "\n".join([
        f"cd {q(certs_dir)} 2>/dev/null || {{ echo '{MARK} missing {certs_dir}'; exit 0; }}",
        f"for f in {CA_CERT} {q(cert)}; do [ -f \"$f\" ] || {{ echo \"{MARK} missing $f\"; exit 0; }}; done",
        f"if [ -f {q(pem_key)} ]; then key={q(pem_key)}; form=PEM; elif [ -f {q(der_key)} ]; then key={q(der_key)}; "
        f"form=DER; else echo '{MARK} missing {pem_key}'; exit 0; fi",
        "if command -v openssl >/dev/null 2>&1; then",
        f"  out=$( (sleep {ALERT_WAIT_SECONDS}) | openssl s_client {starttls}-connect {q(host + ':' + port)} "
        f"{verify} -CAfile {CA_CERT} -cert {q(cert)} -key \"$key\" -keyform \"$form\" -verify_return_error -brief "
        "2>&1 ); rc=$?",
        f"  echo \"{MARK} openssl $rc\"; printf '%s\\n' \"$out\" | tail -n 4",
        f"elif {'true' if postgres_preamble else 'false'} && command -v psql >/dev/null 2>&1 && [ \"$form\" = PEM ]; then",
        f"  out=$(psql {q(conninfo)} -XAtqc 'select 1' 2>&1 </dev/null); rc=$?",
        f"  echo \"{MARK} psql $rc\"; printf '%s\\n' \"$out\" | tail -n 4",
        f"elif command -v psql >/dev/null 2>&1; then echo '{MARK} none psql reads no DER key ({der_key}) and openssl is missing'",
        f"else echo '{MARK} none'; fi",
    ])


def read_proof(output: str, node: str) -> Proof:
    """The proof from the script's output."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    marked = [line for line in lines if line.startswith(MARK)]
    if not marked:
        return Proof(UNPROVEN, "the proof script printed nothing recognisable", node=node)
    words = marked[-1][len(MARK):].split(maxsplit=1)
    tail = [line for line in lines[lines.index(marked[-1]) + 1:] if not line.startswith(MARK)]
    what = words[0] if words else ""
    rest = words[1] if len(words) > 1 else ""
    if what == "missing":
        return Proof(UNPROVEN, f"{rest} is not on the client host", node=node)
    if what == "none":
        return Proof(UNPROVEN, rest or "neither openssl nor psql is installed on the client host", node=node)
    tool, status = what, rest.strip()
    last = _last_words(tail)
    if status == "0":
        return Proof(PROVEN, f"{tool} connected to {node} with the delivered files", tool=tool, node=node)
    return Proof(FAILED, f"{tool} to {node} failed: {last or 'exit ' + status}", tool=tool, node=node)


def _last_words(tail: list[str]) -> str:
    """The line of the tool's output that says why, kept short."""
    for line in reversed(tail):
        if any(word in line.lower() for word in ("error", "alert", "fatal", "refused", "timeout", "failed", "could not")):
            return line[:200]
    return tail[-1][:200] if tail else ""


def _nodes_to_try(run: Run) -> list[NodeConfig]:
    return [node for node in run.inventory.nodes if node.sql_addr]


def prove_client(run: Run, client: ClientConfig, session: HostSession) -> Proof:
    """Try the nodes in order until one proves the client's files (or one answers definitely)."""
    nodes = _nodes_to_try(run)
    if not nodes:
        return Proof(UNPROVEN, "no node has a sql_addr to connect to")
    profile = profile_for(run.inventory.cluster.profile)
    dbname = "defaultdb" if profile.name == "cockroach" else "postgres"
    first: Proof | None = None
    for node in nodes:
        script = proof_script(client.certs_dir or "", client.user, node.sql_addr or "", dbname,
                              postgres_preamble=True)  # sql_addr takes SSLRequest first, as every probe assumes
        try:
            result = session.run(script, timeout=ALERT_WAIT_SECONDS + CONNECT_TIMEOUT_SECONDS + 20)
        except CertRotateError as error:
            return Proof(UNPROVEN, f"the proof could not run on the client host ({error})", node=node.name)
        proof = read_proof(result.stdout + "\n" + result.stderr, node.name)
        if proof.result != FAILED or "refused" not in proof.detail.lower():
            return proof
        first = first or proof  # that node is down: another may answer
    assert first is not None
    return first


def prove_delivery(run: Run, client: ClientConfig, step: str) -> None:
    """After a delivery over SSH: prove it from the client's host, record and report the result."""
    if run.dry_run or not client.delivered_over_ssh:
        return
    label = client_key(client)
    proof = prove_client(run, client, run.session(client))
    record = run.client_record(client)
    run.update_record(record, proof=proof.result, proof_step=step, proof_detail=proof.detail, proof_at=pki.utcnow(),
                      **({"proof_node": proof.node} if proof.node else {}),
                      **({"proof_tool": proof.tool} if proof.tool else {}))
    run.record(f"{step}: client proof {proof.result}", host=label, detail=proof.detail)
    status = "running" if proof.result == PROVEN else "warning"
    words = {PROVEN: "proven from the client host", FAILED: "client-side proof FAILED",
             UNPROVEN: "could not prove from the client host"}[proof.result]
    run.report(Progress(label, step, status, f"{words}: {proof.detail}"))


def retire_gate(run: Run) -> Gate | None:
    """Before the old CA goes: every SSH client's new certificate proven from its host, or the operator's word."""
    pending = unproven_clients(run.state)
    if not pending:
        return None
    records = run.record_view().clients()
    for key in pending:
        detail = records.get(key, {}).get("proof_detail") or "no handshake from its host was recorded"
        run.report(Progress(key, "retire", "warning", f"new certificate not proven from the client host: {detail}"))
    if run.yes and not run.dry_run:
        for key in pending:
            with run.lock:
                records.setdefault(key, {})[WAIVER_KEY] = True
            run.record("retire without client proof", host=key, detail="operator (--yes)")
        run.save()
        return None
    return Gate("confirm", "retire the old CA although these clients' new certificates were not proven from their "
                           "hosts (see the warnings)", items=tuple(pending))
