"""What a doctor finding means and what to do about it, in words (the wizard's doctor screen).

`core.diagnose.doctor` says what it saw ("served ≠ on disk: reload pending ..."); an operator who has
never rotated a CA also needs the cause and the fix. One `Explanation` per check that can
warn or fail, looked up by `advice(finding)`; OK and SKIP findings need none.
"""

from __future__ import annotations

from core.diagnose.doctor import Explanation
from core.findings import FAIL, WARN, Finding

_ROTATE_NODES = "Start a rotation of node certificates only (s, then “node certificates only”)"

ADVICE: dict[str, Explanation] = {
    "bundle": Explanation(
        "The operator's local CA bundle (ca.crt in local_certs_dir) is missing or unreadable, so nothing "
        "the nodes serve can be checked against it.",
        "Put the cluster's ca.crt in the local certs dir, or run first-time setup if the cluster has no CA yet.",
    ),
    "served": Explanation(
        "The node's SQL address did not complete a TLS handshake: the node is down, the address or port in the "
        "inventory is wrong, or something in between (firewall, proxy) cuts the connection.",
        "Check that the node runs and listens on its sql_addr, and that the inventory names the SQL port.",
    ),
    "chain": Explanation(
        "No CA in the trust bundle issued the certificate being checked: clients that trust only that bundle "
        "refuse it with “certificate verify failed” or “unknown authority”.",
        f"{_ROTATE_NODES} to re-issue it from the current CA, or, if its CA is legitimate, add that CA to the "
        "bundle with a CA rotation's trust phase.",
    ),
    "expiry": Explanation(
        "A certificate is outside its validity period, or will be soon; once it expires every verifying "
        "client refuses it.",
        f"{_ROTATE_NODES} (or client certificates only); if a CA itself is expiring, start a CA rotation. Once "
        "certificates have expired and nothing connects, recover instead: s, then “Recover an expired cluster” "
        "(`certrotate start recover`), which replaces them on every node at once without the usual wait.",
    ),
    "hostname": Explanation(
        "The name clients use for the node is not among the subject alternative names (SANs) of the "
        "certificate it serves; verify-full clients check that name and refuse the connection.",
        "Add the name to the node's `addresses` in the inventory, then rotate node certificates so the new "
        "certificate carries it; until then, connect by a name the certificate lists.",
    ),
    "on-disk": Explanation(
        "The certificate the node serves is not its file on disk (node.crt, or ui.crt for the DB Console): new "
        "files were written but the node has not reloaded them (or refused them and kept the old ones), or the "
        "file could not be read over SSH.",
        "Run the node's reload command (SIGHUP for CockroachDB and PostgreSQL) and look at its log if it still "
        "serves the old certificate; if SSH failed, check the node's SSH settings in the inventory.",
    ),
    "console": Explanation(
        "The DB Console's address (http_addr) did not complete a TLS handshake: the node is down, the port in "
        "the inventory is not its HTTP port, or something in between cuts the connection.",
        "Check that the node runs and listens on its http_addr (CockroachDB's --http-addr), and that the "
        "inventory names that port.",
    ),
    "client-ca": Explanation(
        "The node does not accept a client certificate signed by the current CA: clients issued by it would be "
        "refused as “unknown ca”.",
        "Run the trust phase of a CA rotation (or its rollback) so that the node's ca.crt (or ca-client.crt) "
        "holds the current CA, and reload the node.",
    ),
    "client-accepted": Explanation(
        "The node refused this client's certificate in a real TLS handshake.",
        "Re-issue the client certificate from a CA the node trusts (s, then “client certificates only”), or "
        "bring that CA into the node's bundle with a CA rotation.",
    ),
    "client": Explanation(
        "The client's certificate file is missing or is not a certificate.",
        "Issue it with a client certificate rotation, or put client.<user>.crt in the certs dir.",
    ),
    "client-key": Explanation(
        "The client's key is missing, unreadable, or is not the key of its certificate; a client cannot use "
        "a certificate without its own key.",
        "Deliver the key issued with the certificate, or issue a new pair with a client certificate rotation.",
    ),
    "permissions": Explanation(
        "The client's key file is readable by other users; libpq and cockroach refuse to use such a key.",
        "chmod 600 the key file (certrotate writes keys 0600 itself).",
    ),
    "client-chain": Explanation(
        "The client's certificate was not issued by a CA in the certs dir's client CA bundle, so the nodes "
        "will not accept it.",
        "Re-issue it from the current CA with a client certificate rotation.",
    ),
}


def advice(finding: Finding) -> Explanation | None:
    """The cause and the fix of a warning or a failure; None for OK and SKIP findings."""
    if finding.level not in (WARN, FAIL):
        return None
    return ADVICE.get(finding.check)
