"""An organisation's subject policy: `node_subject`, `client_subject` templates made into names.

Templates are written most significant part first, as `openssl req -subj` and most CA
procedures show them: `O=Example,OU=DB,CN={user}`. `{user}` is the client's user name,
`{node}` the node's inventory name. CockroachDB maps a certificate to a user by its CN
(node certificates: CN=node), so the CN is what the identity preflight checks.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from core.errors import BadInput

ATTRIBUTES = {
    "C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME, "L": NameOID.LOCALITY_NAME,
    "O": NameOID.ORGANIZATION_NAME, "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
    "DC": NameOID.DOMAIN_COMPONENT, "SERIALNUMBER": NameOID.SERIAL_NUMBER,
}
PLACEHOLDERS = ("user", "node")
_PART = re.compile(r"^\s*([A-Za-z]+)\s*=\s*(.*?)\s*$")


def _parts(template: str) -> list[tuple[str, str]]:
    parts = []
    for piece in template.split(","):
        match = _PART.match(piece)
        if not match or not match.group(2):
            raise BadInput(f"{piece.strip()!r} is not KEY=value (e.g. O=Example,OU=DB,CN={{user}}).")
        key = match.group(1).upper()
        if key not in ATTRIBUTES:
            raise BadInput(f"{match.group(1)!r} is not a subject attribute certrotate writes; use one of "
                           f"{', '.join(ATTRIBUTES)}.")
        parts.append((key, match.group(2)))
    return parts


def subject_problem(template: str, *, client: bool) -> str | None:
    """Why `template` cannot be a subject policy, or None."""
    try:
        parts = _parts(template)
        for _, value in parts:
            for name in re.findall(r"{([^}]*)}", value):
                if name not in PLACEHOLDERS:
                    return f"uses {{{name}}}; the placeholders are {{user}} and {{node}}"
        cns = [value for key, value in parts if key == "CN"]
        if len(cns) != 1:
            return "needs exactly one CN: CockroachDB maps a certificate to its user by the CN"
        if client and "{user}" not in cns[0]:
            return "needs CN={user}: each client's CN must be its user name"
    except BadInput as error:
        return str(error).rstrip(".")
    return None


def subject_name(template: str, **values: str) -> x509.Name:
    """The x509 name of `template` with its placeholders filled in."""
    attributes = []
    for key, value in _parts(template):
        for name, filled in values.items():
            value = value.replace("{" + name + "}", filled)
        attributes.append(x509.NameAttribute(ATTRIBUTES[key], value))
    return x509.Name(attributes)


DEFAULT_NODE_SUBJECT = "O=Cockroach,CN=node"
DEFAULT_CLIENT_SUBJECT = "O=Cockroach,CN={user}"


def node_subject(template: str | None, node: str, *, with_cn: bool = True) -> x509.Name:
    """node.crt's subject; the split layout's node.crt carries no CN (client.node.crt has it)."""
    name = subject_name(template or DEFAULT_NODE_SUBJECT, node=node)
    if with_cn:
        return name
    kept = [attribute for attribute in name if attribute.oid != NameOID.COMMON_NAME]
    return x509.Name(kept or [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cockroach")])


def client_subject(template: str | None, user: str) -> x509.Name:
    return subject_name(template or DEFAULT_CLIENT_SUBJECT, user=user)
