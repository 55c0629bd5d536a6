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

from core.config.profiles import PROFILES as CLUSTER_PROFILES
from core.errors import BadInput
from core.pki.rules import DEFAULT_FORMATS, FORMATS, KEY_TYPES, check_key_type, check_user_name

PROFILES = tuple(CLUSTER_PROFILES)  # the names `profile` accepts: "cockroach", "postgres", "generic"
DELIVERIES = ("ssh", "kubernetes")  # how node files reach the nodes: certrotate over SSH, or Secrets the operator applies
# Kubernetes object names: a namespace is a DNS label, a Secret or StatefulSet name a DNS subdomain.
_K8S_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
_K8S_SUBDOMAIN = rf"(?=.{{1,253}}$){_K8S_LABEL}(\.{_K8S_LABEL})*"
SIGNERS = ("local", "pkcs11", "cfssl", "manual")  # core.signers
NODE_CERT_LAYOUTS = ("combined", "split")  # split: node.crt without CN=node, plus client.node.crt
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
    """The [cluster] table: the cluster's name, profile, CA and leaf policy, and how its nodes get their files."""

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
    delivery: str = "ssh"  # "kubernetes": certrotate writes Secret manifests and gates, it never logs in to nodes
    kubernetes_namespace: str = "default"
    kubernetes_secret: str = "cockroachdb-node"  # the Secret holding ca.crt, node.crt, node.key
    kubernetes_statefulset: str = "cockroachdb"
    node_cert_layout: str = "combined"  # "split": node.crt serves only, client.node.crt (CN=node) dials
    client_ca_key: str | None = None  # set: client certificates come from a separate client CA (ca-client.crt)
    ui_cert: str | None = None  # operator-side ui.crt (chain) for the DB Console, from your own CA
    ui_key: str | None = None  # operator-side ui.key of that certificate (0600)
    # Who signs (core.signers): local (ca_key, plain or encrypted), pkcs11, cfssl, manual.
    signer: str = "local"
    key_on_node: bool = False  # node keys are made on the node; only a CSR leaves it
    node_subject: str | None = None  # e.g. "O=Example,OU=DB,CN=node"; default O=Cockroach,CN=node
    client_subject: str | None = None  # e.g. "O=Example,OU=DB,CN={user}"; default O=Cockroach,CN={user}
    pkcs11_module: str | None = None  # the token vendor's PKCS#11 library (.so)
    pkcs11_token: str | None = None  # token label
    pkcs11_key_label: str | None = None  # label of the CA's key in the token
    pkcs11_pin_file: str | None = None  # optional: a file holding the PIN (else prompt or CERTROTATE_PKCS11_PIN)
    cfssl_url: str | None = None  # the organisation's CFSSL server, e.g. https://ca.example.org:8888
    cfssl_auth_key_file: str | None = None  # file holding the hex HMAC key of its authsign endpoint
    cfssl_node_profile: str = "node"
    cfssl_client_profile: str = "client"
    cfssl_ca_file: str | None = None  # CA that verifies an https CFSSL server (default: the system's)

    @property
    def on_kubernetes(self) -> bool:
        return self.delivery == "kubernetes"

    @property
    def split_node_certs(self) -> bool:
        return self.node_cert_layout == "split"

    @property
    def has_client_ca(self) -> bool:
        return self.client_ca_key is not None


@dataclass(frozen=True)
class NodeConfig(SshEndpoint):
    """One [[nodes]] entry: where the node is reached over SSH, where its certs live, what it serves."""

    name: str = ""
    certs_dir: str = ""
    addresses: tuple[str, ...] = ()
    sql_addr: str | None = None
    http_addr: str | None = None
    reload: str | None = None
    region: str | None = None
    kubernetes_namespace: str | None = None  # delivery = kubernetes: this node's region lives in another namespace
    key_on_node: bool | None = None  # None: [cluster] key_on_node decides


@dataclass(frozen=True)
class ClientConfig:
    """One [[clients]] entry: a SQL user's client certificate, delivered over SSH or by hand."""

    user: str
    ssh_host: str | None = None
    ssh_port: int = 22
    ssh_user: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None
    certs_dir: str | None = None
    restart: str | None = None
    formats: tuple[str, ...] = DEFAULT_FORMATS  # pem | pk8 | p12 (core.pki.client_formats makes them)
    p12_password_file: str | None = None  # operator-side file holding the PKCS#12 password; never stored
    key_on_host: bool = False  # the client's key is made on its SSH host; only a CSR leaves it

    @property
    def delivered_over_ssh(self) -> bool:
        return self.ssh_host is not None

    @property
    def label(self) -> str:
        return f"client {self.user}" + (f" on {self.ssh_host}" if self.ssh_host else " (manual delivery)")


@dataclass(frozen=True)
class Inventory:
    """The operator's part of the state file: the cluster, its nodes and its clients."""

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
        if kind is bool and not isinstance(value, bool):
            self.fail(key, f"must be true or false, not {value!r}")
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


def _check_kubernetes_cluster(c: _Reader, cluster: ClusterConfig) -> None:
    if cluster.on_kubernetes:
        # The node Secret certrotate writes holds ca.crt, node.crt and node.key only.
        for key, value in (("node_cert_layout", cluster.node_cert_layout != "combined"),
                           ("client_ca_key", cluster.client_ca_key is not None)):
            if value:
                c.fail(key, 'is not supported with delivery = "kubernetes" yet (its Secret holds ca.crt, node.crt '
                            "and node.key only)")
    checks = (("kubernetes_namespace", _K8S_LABEL, "a DNS label"), ("kubernetes_secret", _K8S_SUBDOMAIN, "a DNS subdomain"),
              ("kubernetes_statefulset", _K8S_SUBDOMAIN, "a DNS subdomain"))
    for key, pattern, what in checks:
        if not re.fullmatch(pattern, getattr(cluster, key)):
            c.fail(key, f"{getattr(cluster, key)!r} is not a Kubernetes name ({what}: lower-case letters, digits, '-')")


def _check_kubernetes_node(r: _Reader, cluster: ClusterConfig, node: NodeConfig, earlier: list[NodeConfig]) -> None:
    """With delivery = kubernetes a node needs its SANs, a region usable in a file name, one namespace per region."""
    if not cluster.on_kubernetes:
        if node.kubernetes_namespace is not None:
            r.fail("kubernetes_namespace", "is only used with [cluster] delivery = \"kubernetes\"")
        return
    if not node.addresses:
        r.fail(None, "needs addresses (the SANs of its region's node certificate, e.g. the pod and service names)")
    if node.kubernetes_namespace is not None and not re.fullmatch(_K8S_LABEL, node.kubernetes_namespace):
        r.fail("kubernetes_namespace", f"{node.kubernetes_namespace!r} is not a Kubernetes namespace name")
    if node.region is not None and not re.fullmatch(r"[A-Za-z0-9_.-]+", node.region):
        r.fail("region", f"{node.region!r} may only use letters, digits, '.', '_' and '-' (it names manifest files)")
    namespace = node.kubernetes_namespace or cluster.kubernetes_namespace
    for other in earlier:
        if other.region == node.region and (other.kubernetes_namespace or cluster.kubernetes_namespace) != namespace:
            r.fail("kubernetes_namespace", f"differs from node {other.name!r} of the same region; a region is one "
                                           "namespace with one node Secret")


def _check_split_fields(c: _Reader, cluster: ClusterConfig) -> None:
    """A client CA key is a second secret: it must not be the node CA's, and CockroachDB needs client.node.crt."""
    if cluster.client_ca_key is None:
        return
    if Path(cluster.client_ca_key).expanduser() == Path(cluster.ca_key).expanduser():
        c.fail("client_ca_key", f"is the same file as ca_key ({cluster.ca_key!r}); the client CA needs a key of its own")
    if cluster.profile == "cockroach" and not cluster.split_node_certs:
        # With ca-client.crt a CockroachDB node checks the certificate another node dials with
        # against the client CA; only client.node.crt (signed by it) gets through.
        c.fail("client_ca_key", 'needs node_cert_layout = "split" with the cockroach profile: nodes dial each '
               "other with client.node.crt, signed by the client CA")


def _check_signer_fields(c: _Reader, cluster: ClusterConfig) -> None:
    """Each signer's own fields; a signer that cannot serve this cluster's layout says so here."""
    needed = {"pkcs11": ("pkcs11_module", "pkcs11_token", "pkcs11_key_label"), "cfssl": ("cfssl_url", "cfssl_auth_key_file")}
    for key in needed.get(cluster.signer, ()):
        if getattr(cluster, key) is None:
            c.fail("signer", f'is "{cluster.signer}", which needs {key} too (and {", ".join(needed[cluster.signer])})')
    if cluster.signer != "local" and cluster.client_ca_key is not None:
        c.fail("client_ca_key", f'is not supported with signer = "{cluster.signer}" yet; use the local signer for a '
                                "separate client CA")
    if cluster.signer != "local" and cluster.on_kubernetes:
        c.fail("signer", f'"{cluster.signer}" is not supported with delivery = "kubernetes" yet')
    if cluster.cfssl_url is not None and urlsplit(cluster.cfssl_url).scheme not in ("http", "https"):
        c.fail("cfssl_url", f"{cluster.cfssl_url!r} is not an http:// or https:// URL")
    for key in ("node_subject", "client_subject"):
        value = getattr(cluster, key)
        if value is not None:
            from core.pki.subjects import subject_problem
            problem = subject_problem(value, client=key == "client_subject")
            if problem:
                c.fail(key, problem)
def _client_formats(r: _Reader) -> tuple[tuple[str, ...], str | None]:
    """`formats` (the files a client stack reads) and the PKCS#12 password file that `p12` needs."""
    formats = r.get("formats", list, DEFAULT_FORMATS)
    if not formats:
        r.fail("formats", f"is empty; list at least one of {', '.join(FORMATS)} (\"pem\" is the default)")
    for value in formats:
        if value not in FORMATS:
            r.fail("formats", f"has {value!r}; choose from {', '.join(FORMATS)}")
    if len(set(formats)) != len(formats):
        r.fail("formats", "lists a format twice")
    password_file = r.get("p12_password_file", str, None)
    if "p12" in formats and password_file is None:
        r.fail("p12_password_file", "is missing: formats has \"p12\", and a PKCS#12 file needs a password; name "
                                    "a file holding it (relative to the state file)")
    if password_file is not None and "p12" not in formats:
        r.fail("p12_password_file", "is set but formats has no \"p12\"; add \"p12\" to formats or remove it")
    return formats, password_file


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
        delivery=c.get("delivery", str, "ssh", choices=DELIVERIES),
        kubernetes_namespace=c.get("kubernetes_namespace", str, "default"),
        kubernetes_secret=c.get("kubernetes_secret", str, "cockroachdb-node"),
        kubernetes_statefulset=c.get("kubernetes_statefulset", str, "cockroachdb"),
        node_cert_layout=c.get("node_cert_layout", str, "combined", choices=NODE_CERT_LAYOUTS),
        client_ca_key=c.get("client_ca_key", str, None),
        ui_cert=c.get("ui_cert", str, None),
        ui_key=c.get("ui_key", str, None),
        signer=c.get("signer", str, "local", choices=SIGNERS),
        key_on_node=c.get("key_on_node", bool, False),
        node_subject=c.get("node_subject", str, None),
        client_subject=c.get("client_subject", str, None),
        pkcs11_module=c.get("pkcs11_module", str, None),
        pkcs11_token=c.get("pkcs11_token", str, None),
        pkcs11_key_label=c.get("pkcs11_key_label", str, None),
        pkcs11_pin_file=c.get("pkcs11_pin_file", str, None),
        cfssl_url=c.get("cfssl_url", str, None),
        cfssl_auth_key_file=c.get("cfssl_auth_key_file", str, None),
        cfssl_node_profile=c.get("cfssl_node_profile", str, "node"),
        cfssl_client_profile=c.get("cfssl_client_profile", str, "client"),
        cfssl_ca_file=c.get("cfssl_ca_file", str, None),
    )
    _check_kubernetes_cluster(c, cluster)
    _check_split_fields(c, cluster)
    _check_signer_fields(c, cluster)
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
        over_ssh = not cluster.on_kubernetes
        certs_dir = r.get("certs_dir", str) if over_ssh else r.get("certs_dir", str, "")
        node = NodeConfig(
            name=r.get("name", str),
            certs_dir=_remote_dir(r, "certs_dir", certs_dir) if certs_dir else "",
            addresses=r.get("addresses", list, ()),
            sql_addr=r.get("sql_addr", str, None),
            http_addr=r.get("http_addr", str, None),
            reload=r.get("reload", str, None),
            region=r.get("region", str, None),
            kubernetes_namespace=r.get("kubernetes_namespace", str, None),
            key_on_node=r.get("key_on_node", bool, None),
            **_endpoint_fields(r, host_required=over_ssh),
        )
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", node.name):
            r.fail("name", f"{node.name!r} may only use letters, digits, '.', '_' and '-'")
        _check_addr(r, "sql_addr", node.sql_addr)
        _check_addr(r, "http_addr", node.http_addr)
        if any(n.name == node.name for n in nodes):
            r.fail("name", f"{node.name!r} is used by another node; node names must be unique")
        _check_kubernetes_node(r, cluster, node, nodes)
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
        formats, p12_password_file = _client_formats(r)
        client = ClientConfig(user=user, certs_dir=certs, restart=r.get("restart", str, None), formats=formats,
                              p12_password_file=p12_password_file, key_on_host=r.get("key_on_host", bool, False),
                              **endpoint)
        if client.key_on_host and not client.delivered_over_ssh:
            r.fail("key_on_host", "needs ssh_host: the key is made on the client's host over SSH")
        if client.key_on_host and client.formats != DEFAULT_FORMATS:
            r.fail("key_on_host", "works with formats = [\"pem\"] only: the .pk8 and .p12 files would need the key here")
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
            if value is None or value == "":  # "": a Kubernetes node's certs_dir, which it does not have
                continue
            if f.name == "formats" and value == DEFAULT_FORMATS:  # a client's file stays as its operator wrote it
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    cluster = plain(inventory.cluster)
    if not inventory.cluster.on_kubernetes:  # an SSH cluster's file stays as its operator wrote it
        cluster = {k: v for k, v in cluster.items() if k != "delivery" and not k.startswith("kubernetes_")}
    # The signer's fields appear once the operator sets them, not in every file.
    cluster = {k: v for k, v in cluster.items() if k not in _QUIET_DEFAULTS or v != _QUIET_DEFAULTS[k]}
    data: dict[str, Any] = {"cluster": cluster, "nodes": [plain(n) for n in inventory.nodes]}
    if inventory.clients:
        data["clients"] = [{k: v for k, v in plain(c).items() if not (k == "key_on_host" and v is False)}
                           for c in inventory.clients]
    return data


_QUIET_DEFAULTS = {"signer": "local", "key_on_node": False, "cfssl_node_profile": "node", "cfssl_client_profile": "client"}


def resolve_local(path: str, base: Path) -> Path:
    """Relative paths in the state file are relative to its directory; ~ is the operator's home."""
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base / expanded


def split_address(address: str) -> tuple[str, int]:
    """"host:port" or "[v6]:port" -> (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    host = host.strip("[]") if host.startswith("[") else host
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or (":" in host and "[" not in address):
        raise BadInput(f"{address!r} is not a host:port address (IPv6 as [addr]:port).")
    return host, int(port)
