"""The identity preflight: a plan whose certificates would lock someone out is refused before it starts.

CockroachDB maps a certificate to a user by its CN: node certificates must say CN=node (in
the split layout, client.node.crt does), and client.<user>.crt must say CN=<user>, or that
user (or every node) is refused at the next reload. Clients connect to a node by the host
of its sql_addr (and browsers by that of http_addr), so those must be among its SANs. An
organisation's subject policy (`node_subject`, `client_subject`) is checked against all of
this with the real names of the inventory, before anything is issued.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from cryptography import x509

from core import pki
from core.errors import BadInput
from core.pki.subjects import client_subject, node_subject

if TYPE_CHECKING:  # the inventory is read, never imported: signers sit below core.config
    from core.config.inventory import Inventory, NodeConfig


def _cn(name: x509.Name) -> str | None:
    values = name.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(values[0].value) if values else None


def _covered(host: str, sans: list[x509.GeneralName]) -> bool:
    try:
        wanted_ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        wanted_ip = None
    for name in sans:
        if isinstance(name, x509.IPAddress) and wanted_ip is not None and name.value == wanted_ip:
            return True
        if isinstance(name, x509.DNSName) and wanted_ip is None:
            pattern, host_name = name.value.lower(), host.lower().rstrip(".")
            if pattern == host_name or (pattern.startswith("*.") and host_name.split(".", 1)[-1] == pattern[2:]
                                        and "." in host_name):
                return True
    return False


def _host_of(addr: str) -> str:
    return addr.rsplit(":", 1)[0]


def lockout_problems(inventory: Inventory) -> list[str]:
    """One sentence per certificate that would lock a user or a node out; empty when the plan is safe."""
    cluster = inventory.cluster
    problems: list[str] = []
    cockroach = cluster.profile == "cockroach"
    for node in inventory.nodes:
        if cockroach and not cluster.split_node_certs:
            cn = _cn(node_subject(cluster.node_subject, node.name))
            if cn != pki.NODE_USER:
                problems.append(f"node_subject gives {node.name}'s node.crt CN={cn}; CockroachDB maps node "
                                "certificates to the node user by CN=node, so the nodes would refuse each other "
                                "(use CN=node).")
        problems += _san_problems(node)
    if cockroach and cluster.split_node_certs:
        cn = _cn(client_subject(cluster.client_subject, pki.NODE_USER))
        if cn != pki.NODE_USER:
            problems.append(f"client_subject gives client.node.crt CN={cn}; nodes dial each other with it as the "
                            "node user, so it needs CN=node (use CN={user}).")
    for client in inventory.clients:
        cn = _cn(client_subject(cluster.client_subject, client.user))
        if cn != client.user:
            problems.append(f"client_subject gives client.{client.user}.crt CN={cn}; the node maps it to a user by "
                            f"its CN, so {client.user} could not log in (use CN={{user}}).")
    return problems


def _san_problems(node: NodeConfig) -> list[str]:
    if not node.addresses and not node.ssh_host:
        return []
    sans = pki.subject_alternative_names(list(node.addresses) or [node.ssh_host])
    problems = []
    for field, addr in (("sql_addr", node.sql_addr), ("http_addr", node.http_addr)):
        if addr and not _covered(_host_of(addr), sans):
            problems.append(f"{node.name}'s {field} host {_host_of(addr)} is not among its addresses (the SANs of "
                            f"node.crt); clients connecting to it with verify-full would refuse the node (add it to "
                            "addresses).")
    return problems


def check_identities(inventory: Inventory) -> None:
    problems = lockout_problems(inventory)
    if problems:
        more = f" ({len(problems) - 1} more like it)" if len(problems) > 1 else ""
        raise BadInput(problems[0].rstrip(".") + more + ".")
