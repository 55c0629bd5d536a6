"""The operator's inventory: [cluster], [[nodes]] and [[clients]] of the state file, validated.

Validation errors name the field and the line it is on, because the operator wrote
this part by hand and will fix it in an editor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.errors import BadInput
from core.keys import KEY_TYPES, check_key_type
from core.pki import check_user_name

PROFILES = ("cockroach", "postgres", "generic")
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?\s*(#.*)?$")


@dataclass(frozen=True)
class SshEndpoint:
    """How to reach a host over SSH; shared by nodes and SSH-delivered clients."""

    ssh_host: str
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True)
class ClusterConfig:
    name: str
    profile: str = "cockroach"
    local_certs_dir: str = "certs"
    ca_key: str = "safe/ca.key"
    key_type: str = "rsa-2048"
    leaf_delay_days: int = 30
    ca_lifetime_days: int = 3660
    node_lifetime_days: int = 1830
    client_lifetime_days: int = 1830
    verify_timeout_seconds: int = 15  # how long a node may take to serve its new files after a reload
    ocsp_url: str | None = None  # written into issued leaves (AIA OCSP) for security.ocsp.mode
    ui_cert: str | None = None  # operator-side ui.crt (chain) for the DB Console, from your own CA
    ui_key: str | None = None  # operator-side ui.key of that certificate (0600)


@dataclass(frozen=True)
class NodeConfig(SshEndpoint):
    name: str = ""
    certs_dir: str = ""
    addresses: tuple[str, ...] = ()
    sql_addr: str | None = None
    http_addr: str | None = None
    reload: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class ClientConfig:
    user: str
    ssh_host: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None
    certs_dir: str | None = None
    restart: str | None = None

    @property
    def delivered_over_ssh(self) -> bool:
        return self.ssh_host is not None

    @property
    def label(self) -> str:
        return f"client {self.user}" + (f" on {self.ssh_host}" if self.ssh_host else " (manual delivery)")


@dataclass(frozen=True)
class Inventory:
    cluster: ClusterConfig
    nodes: tuple[NodeConfig, ...]
    clients: tuple[ClientConfig, ...] = field(default_factory=tuple)

    def node(self, name: str) -> NodeConfig:
        for node in self.nodes:
            if node.name == name:
                return node
        raise BadInput(f"No node named {name!r} in the inventory.")


def line_of(text: str, table: str, index: int | None, key: str | None) -> int | None:
    """The line number of `key` in the index-th [[table]] (or [table]); None if not written."""
    seen = -1
    current = None
    header_line = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _HEADER.match(line)
        if match:
            current = match.group(2)
            if current == table:
                seen += 1
                if (index is None or seen == index):
                    header_line = number
                    if key is None:
                        return number
            continue
        if current == table and (index is None or seen == index) and key is not None:
            if re.match(rf"^\s*{re.escape(key)}\s*=", line):
                return number
    return header_line


class _Reader:
    """Reads one table, checking types; errors carry the file, line and field."""

    def __init__(self, source: str, text: str, table: str, index: int | None, data: Any):
        self.source, self.text, self.table, self.index = source, text, table, index
        if not isinstance(data, dict):
            self.fail(None, f"[{table}] must be a table")
        self.data = data

    def where(self, key: str | None) -> str:
        line = line_of(self.text, self.table, self.index, key)
        place = f"{self.table}[{self.index}]" if self.index is not None else self.table
        name = f"{place}.{key}" if key else f"[{place}]"
        return f"{self.source}" + (f" line {line}" if line else "") + f": {name}"

    def fail(self, key: str | None, problem: str) -> None:
        raise BadInput(f"{self.where(key)} {problem}.")

    def get(self, key: str, kind: type, default: Any = ..., *, choices: tuple[str, ...] | None = None) -> Any:
        if key not in self.data:
            if default is ...:
                self.fail(None, f"is missing the required field {key!r}")
            return default
        value = self.data[key]
        if kind is int and (isinstance(value, bool) or not isinstance(value, int)):
            self.fail(key, f"must be a whole number, not {value!r}")
        if kind is str and not isinstance(value, str):
            self.fail(key, f"must be a string, not {value!r}")
        if kind is str and not value.strip():
            self.fail(key, "must not be empty")
        if kind is list and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            self.fail(key, "must be a list of strings")
        if choices and value not in choices:
            self.fail(key, f"is {value!r}; choose one of {', '.join(choices)}")
        return tuple(value) if kind is list else value

    def no_unknown(self, known: set[str]) -> None:
        for key in self.data:
            if key not in known:
                self.fail(key, "is not a known field (a typo?)")


def ocsp_url_problem(url: str) -> str | None:
    """Why `url` cannot be an OCSP responder URL (an http:// or https:// URL), or None."""
    parsed = urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return f"{url!r} is not an http:// or https:// URL"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return f"{url!r} contains white space or control characters"
    return None


def check_ocsp_url(url: str) -> str:
    problem = ocsp_url_problem(url)
    if problem:
        raise BadInput(f"The OCSP URL {problem}.")
    return url


def _names(cls: type) -> set[str]:
    return {f.name for f in fields(cls)}


def _endpoint_fields(r: _Reader, host_required: bool) -> dict[str, Any]:
    values = {
        "ssh_host": r.get("ssh_host", str) if host_required else r.get("ssh_host", str, None),
        "ssh_port": r.get("ssh_port", int, 22),
        "ssh_user": r.get("ssh_user", str, None),
        "ssh_key": r.get("ssh_key", str, None),
        "known_hosts": r.get("known_hosts", str, None),
    }
    if not 0 < values["ssh_port"] < 65536:
        r.fail("ssh_port", "must be between 1 and 65535")
    if values["ssh_user"] is not None and not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\$?", values["ssh_user"]):
        r.fail("ssh_user", f"{values['ssh_user']!r} is not a valid user name")
    return values


def _check_addr(r: _Reader, key: str, value: str | None) -> None:
    if value is not None and not re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):\d{1,5}", value):
        r.fail(key, f"{value!r} is not host:port")


def _remote_dir(r: _Reader, key: str, value: str) -> str:
    if not value.startswith("/"):
        r.fail(key, f"{value!r} must be an absolute path on the host")
    if "\x00" in value or "\n" in value:
        r.fail(key, "contains a control character")
    return value


def parse_inventory(data: dict[str, Any], text: str, source: str) -> Inventory:
    if "cluster" not in data:
        raise BadInput(f"{source} has no [cluster] table; it needs at least [cluster] name and one [[nodes]].")
    c = _Reader(source, text, "cluster", None, data["cluster"])
    c.no_unknown(_names(ClusterConfig))
    cluster = ClusterConfig(
        name=c.get("name", str),
        profile=c.get("profile", str, "cockroach", choices=PROFILES),
        local_certs_dir=c.get("local_certs_dir", str, "certs"),
        ca_key=c.get("ca_key", str, "safe/ca.key"),
        key_type=c.get("key_type", str, "rsa-2048", choices=tuple(KEY_TYPES)),
        leaf_delay_days=c.get("leaf_delay_days", int, 30),
        ca_lifetime_days=c.get("ca_lifetime_days", int, 3660),
        node_lifetime_days=c.get("node_lifetime_days", int, 1830),
        client_lifetime_days=c.get("client_lifetime_days", int, 1830),
        verify_timeout_seconds=c.get("verify_timeout_seconds", int, 15),
        ocsp_url=c.get("ocsp_url", str, None),
        ui_cert=c.get("ui_cert", str, None),
        ui_key=c.get("ui_key", str, None),
    )
    if (cluster.ui_cert is None) != (cluster.ui_key is None):
        c.fail("ui_key" if cluster.ui_key is None else "ui_cert",
               "is missing: ui_cert and ui_key name a certificate and its key, give both or neither")
    if cluster.ocsp_url is not None and ocsp_url_problem(cluster.ocsp_url):
        c.fail("ocsp_url", f"{ocsp_url_problem(cluster.ocsp_url)}; give the OCSP responder as http://host/path")
    check_key_type(cluster.key_type)
    for key in ("leaf_delay_days", "ca_lifetime_days", "node_lifetime_days", "client_lifetime_days", "verify_timeout_seconds"):
        if getattr(cluster, key) < (0 if key == "leaf_delay_days" else 1):
            c.fail(key, "must be positive")
    for key in ("node_lifetime_days", "client_lifetime_days"):
        if getattr(cluster, key) > cluster.ca_lifetime_days:
            c.fail(key, "is longer than ca_lifetime_days; a leaf never outlives its CA")

    raw_nodes = data.get("nodes", [])
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise BadInput(f"{source} has no [[nodes]]; describe at least one node.")
    nodes = []
    for index, raw in enumerate(raw_nodes):
        r = _Reader(source, text, "nodes", index, raw)
        r.no_unknown(_names(NodeConfig))
        node = NodeConfig(
            name=r.get("name", str),
            certs_dir=_remote_dir(r, "certs_dir", r.get("certs_dir", str)),
            addresses=r.get("addresses", list, ()),
            sql_addr=r.get("sql_addr", str, None),
            http_addr=r.get("http_addr", str, None),
            reload=r.get("reload", str, None),
            region=r.get("region", str, None),
            **_endpoint_fields(r, host_required=True),
        )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", node.name):
            r.fail("name", f"{node.name!r} may only use letters, digits, '.', '_' and '-'")
        _check_addr(r, "sql_addr", node.sql_addr)
        _check_addr(r, "http_addr", node.http_addr)
        if any(n.name == node.name for n in nodes):
            r.fail("name", f"{node.name!r} is used by another node; node names must be unique")
        nodes.append(node)

    clients = []
    raw_clients = data.get("clients", [])
    if not isinstance(raw_clients, list):
        raise BadInput(f"{source}: clients must be an array of tables ([[clients]]).")
    for index, raw in enumerate(raw_clients):
        r = _Reader(source, text, "clients", index, raw)
        r.no_unknown(_names(ClientConfig))
        user = r.get("user", str)
        try:
            check_user_name(user)
        except BadInput:
            r.fail("user", f"{user!r} is not safe in a file name (no '/', '\\', '..', NUL, white space or leading dot)")
        endpoint = _endpoint_fields(r, host_required=False)
        certs = r.get("certs_dir", str, None)
        if endpoint["ssh_host"] is not None:
            if certs is None:
                r.fail(None, "delivers over SSH and so needs certs_dir")
            _remote_dir(r, "certs_dir", certs)
        client = ClientConfig(user=user, certs_dir=certs, restart=r.get("restart", str, None), **endpoint)
        if any(other.user == user and other.ssh_host == client.ssh_host for other in clients):
            r.fail("user", f"{user!r} on {client.ssh_host or 'manual delivery'} is listed twice")
        clients.append(client)
    return Inventory(cluster, tuple(nodes), tuple(clients))


def inventory_to_toml_data(inventory: Inventory) -> dict[str, Any]:
    """Plain data for tomli-w: omit None (TOML has no null) and defaults stay explicit."""

    def plain(obj: Any) -> dict[str, Any]:
        out = {}
        for f in fields(obj):
            value = getattr(obj, f.name)
            if value is None:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    data: dict[str, Any] = {"cluster": plain(inventory.cluster), "nodes": [plain(n) for n in inventory.nodes]}
    if inventory.clients:
        data["clients"] = [plain(c) for c in inventory.clients]
    return data


def resolve_local(path: str, base: Path) -> Path:
    """Relative paths in the state file are relative to its directory; ~ is the operator's home."""
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base / expanded
