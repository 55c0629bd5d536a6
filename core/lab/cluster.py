"""A whole lab cluster: N nodes (sshd + PostgreSQL each) on loopback, an initial PKI and the
operator's workspace with a certrotate state file describing it.

    with start_lab(nodes=3) as lab:                 # or start_lab(workdir, nodes=3, ...)
        lab.state_path                              # operator/certrotate.toml (docs/state-file.md)
        node = lab.nodes[0]                         # LabNode n1 on 127.A.B.1
        conn = lab.connect_sql(node, "root")        # psycopg, verify-full, client cert
        ssh = lab.ssh(node)                         # paramiko, RejectPolicy + lab known_hosts
        node.stop_sshd(); node.start_sshd()         # a host that goes down and comes back
    # leaving the block stops every process by pid (also at interpreter exit)

Addresses: each lab claims a random block 127.A.B.0/24 (A in 16..239), holding an flock
on /tmp/certrotate-lab-locks/127.A.B.lock for its lifetime and checking by binding that
every port it needs is free there, so several labs (tests and a demo) run side by side.
Node i gets 127.A.B.i; a client delivered over SSH gets a host of its own at
127.A.B.(200+j). sshd listens on `ssh_port` (2222) and PostgreSQL on `sql_port` (26257)
on every address; both are attributes, never assumed elsewhere. With `console=True` every
node also gets a stand-in for the DB Console's TLS listener on `http_port` (8080), which
serves ui.crt (else node.crt) with direct TLS and reloads on SIGHUP (core.lab.console);
the state file then has each node's `http_addr`, and its reload command signals both.

Layout of `workdir` (0755 throughout, so the postgres account can reach its files):

    operator/                   the operator's workspace (state file paths are relative to it)
      certrotate.toml           [cluster] profile="postgres", [[nodes]], [[clients]]
      certs/                    local_certs_dir: ca.crt, client.<user>.crt/.key
      safe/ca.key               the CA key (dir 0700, key 0600); safe/ca-client.key with client_ca=True
      id_ed25519[.pub]          operator SSH key, authorised on every sshd
      known_hosts               "[127.A.B.i]:2222 ssh-ed25519 ..." for every host
    authorized_keys             the operator's public key (AuthorizedKeysFile of every sshd)
    nodes/<name>/certs/         the node's certs dir: ca.crt, node.crt, node.key (0600); with
                                client_ca=True also ca-client.crt (PostgreSQL's ssl_ca_file then), and
                                with node_cert_layout="split" client.node.crt/.key (role `node`)
    nodes/<name>/sshd/          sshd_config, host key, sshd.pid, sshd.log
    nodes/<name>/console/       with console=True: console.pid, console.log (core.lab.console)
    nodes/<name>/pg/            postgres.log; data -> the data dir (postmaster.pid) and its admin
                                socket dir, which live on tmpfs when there is one (core.lab.scratch)
    clients/<user>/certs/       for a client delivered over SSH: ca.crt, client.<user>.crt/.key
    clients/<user>/sshd/

As root, PostgreSQL runs as `postgres` and owns each node's certs dir (node.key 0600);
the SSH login user defaults to root (pass ssh_user="postgres" to log in as the owner).
As a normal user everything runs as, and logs in as, that user.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import errno
import fcntl
import os
import random
import signal
import socket
import stat
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Sequence

import tomli_w

from core import pki
from core.config.inventory import NODE_CERT_LAYOUTS
from core.errors import BadInput, CertRotateError
from core.files import write_private, write_public
from core.lab.console import DEFAULT_HTTP_PORT, LabConsole
from core.lab.postgres import DEFAULT_SQL_PORT, PostgresServer, connect_tls, default_run_as, initdb_template
from core.lab.procs import RunAs, is_root
from core.lab.scratch import ScratchDir
from core.lab.sshd import DEFAULT_SSH_PORT, SshServer, generate_ed25519_key
from core.pki.keys import DEFAULT_KEY_TYPE, check_key_type

if TYPE_CHECKING:
    import paramiko
    import psycopg

LOCK_DIR = Path(tempfile.gettempdir()) / "certrotate-lab-locks"
STATE_FILE = "certrotate.toml"
OPERATOR_KEY = "id_ed25519"
CLIENT_HOST_OFFSET = 200
MAX_NODES = CLIENT_HOST_OFFSET - 1  # with clients delivered over SSH, whose hosts are 127.A.B.200 and up
MAX_NODES_WITHOUT_CLIENT_HOSTS = 254
WORKDIR_PREFIX = "certrotate-lab-work-"
CLIENT_CA_KEY = "ca-client.key"
KEEP_ENV = "CERTROTATE_LAB_KEEP"


@dataclass
class LabNode:
    """One lab host: an sshd and a PostgreSQL server on the same loopback address."""

    name: str
    address: str
    ssh_port: int
    sql_port: int
    certs_dir: Path
    sshd: SshServer
    postgres: PostgresServer | None  # None: start_lab(postgres=False), the SQL port is `sql_stand_in`
    owner: RunAs = field(repr=False)
    console: LabConsole | None = None  # start_lab(console=True): the DB Console stand-in
    sql_stand_in: LabConsole | None = None  # start_lab(postgres=False): a light TLS listener on the SQL port

    @property
    def sql_server(self) -> PostgresServer | LabConsole:
        """What listens on the SQL port: PostgreSQL, or the light stand-in."""
        server = self.postgres or self.sql_stand_in
        assert server is not None
        return server

    @property
    def addresses(self) -> list[str]:
        """The SANs of its node certificate."""
        return [self.address, "localhost"]

    @property
    def sql_addr(self) -> str:
        return f"{self.address}:{self.sql_port}"

    @property
    def http_addr(self) -> str | None:
        return self.console.http_addr if self.console else None

    @property
    def reload_command(self) -> str:
        """Signals PostgreSQL (or the SQL stand-in), and the console when there is one (each by its pid file)."""
        if self.console is None:
            return self.sql_server.reload_command
        return f"{self.sql_server.reload_command} && {self.console.reload_command}"

    def start_sshd(self) -> None:
        self.sshd.start()

    def stop_sshd(self) -> None:
        """The host becomes unreachable over SSH (listener and open sessions end); SQL keeps running."""
        self.sshd.stop()

    def start_postgres(self) -> None:
        self.sql_server.start()

    def stop_postgres(self) -> None:
        self.sql_server.stop()

    def reload(self) -> None:
        """SIGHUP the postmaster (and the console) locally, as `reload_command` does over SSH."""
        self.sql_server.reload()
        if self.console is not None:
            self.console.reload()

    def start(self) -> None:
        self.sql_server.start()
        if self.console is not None:
            self.console.start()
        self.sshd.start()

    def stop(self) -> None:
        self.sshd.stop()
        if self.console is not None:
            self.console.stop()
        self.sql_server.stop()

    def install_files(self, files: dict[str, bytes]) -> None:
        """Write files into the certs dir as the owner the node expects (`*.key` 0600, others 0644)."""
        for file_name, content in files.items():
            path = self.certs_dir / file_name
            if file_name.endswith(".key"):
                write_private(path, content, overwrite=True)
            else:
                write_public(path, content, overwrite=True)
            self.owner.chown(path)

    def install_node_cert(self, issued: pki.Issued, *, ca_pem: bytes | None = None) -> None:
        """Replace node.crt/node.key (and ca.crt when given) on disk; does not reload."""
        files = {"node.crt": issued.cert_pem, "node.key": issued.key_pem()}
        if ca_pem is not None:
            files["ca.crt"] = ca_pem
        self.install_files(files)


@dataclass
class LabClientHost:
    """A host an application's client certificate is delivered to over SSH."""

    user: str
    name: str
    address: str
    ssh_port: int
    certs_dir: Path
    sshd: SshServer

    def start_sshd(self) -> None:
        self.sshd.start()

    def stop_sshd(self) -> None:
        self.sshd.stop()

    def link_certs_dir(self) -> Path:
        """Make certs_dir a relative symlink to `archive/certs.1` beside it, holding the same files (the certbot
        live/archive layout); return the directory it points to. The path in the state file stays the same."""
        archive = self.certs_dir.parent / "archive"
        archive.mkdir(mode=0o755, exist_ok=True)
        version = archive / "certs.1"
        self.certs_dir.rename(version)  # keeps the files, their modes and owners
        self.certs_dir.symlink_to(Path("archive") / version.name)
        return version


_live_labs: set["Lab"] = set()
_live_lock = threading.Lock()


def _stop_live_labs() -> None:
    for lab in list(_live_labs):
        with contextlib.suppress(Exception):
            lab.stop()


atexit.register(_stop_live_labs)


class Lab:
    """A running lab; build it with `start_lab`. A context manager; `stop()` is idempotent."""

    def __init__(
        self,
        *,
        workdir: Path,
        name: str,
        block: str,
        ssh_user: str,
        run_as: RunAs,
        ca: pki.Issued,
        nodes: list[LabNode],
        client_users: list[str],
        client_hosts: list[LabClientHost],
        own_workdir: ScratchDir | None,
        lock: "_BlockLock",
        scratch: ScratchDir,
        client_ca: pki.Issued | None = None,
        node_cert_layout: str = "combined",
    ) -> None:
        self.workdir = workdir
        self.name = name
        self.block = block
        self.ssh_user = ssh_user
        self.run_as = run_as
        self.ca = ca
        self.client_ca = client_ca  # the separate client CA, when the lab has one
        self.node_cert_layout = node_cert_layout
        self.nodes = nodes
        self.client_users = client_users
        self.client_hosts = client_hosts
        self.operator_dir = workdir / "operator"
        self.state_path = self.operator_dir / STATE_FILE
        self.local_certs_dir = self.operator_dir / "certs"
        self.ca_key_path = self.operator_dir / "safe" / "ca.key"
        self.client_ca_key_path = self.operator_dir / "safe" / CLIENT_CA_KEY
        self.operator_key = self.operator_dir / OPERATOR_KEY
        self.known_hosts = self.operator_dir / "known_hosts"
        self.authorized_keys = workdir / "authorized_keys"
        self._own_workdir = own_workdir
        self._lock = lock
        self._scratch = scratch
        self._stopped = False
        with _live_lock:
            _live_labs.add(self)

    def __repr__(self) -> str:
        return f"Lab({self.name}: {len(self.nodes)} nodes on {self.block}0/24, workdir={self.workdir})"

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def node(self, name: str) -> LabNode:
        for node in self.nodes:
            if node.name == name:
                return node
        raise BadInput(f"The lab has no node named {name!r}; it has {', '.join(n.name for n in self.nodes)}.")

    def client_host(self, user: str) -> LabClientHost:
        for host in self.client_hosts:
            if host.user == user:
                return host
        raise BadInput(f"The lab delivers no client certificate for {user!r} over SSH.")

    def client_certs_dir(self, user: str) -> Path:
        """Where the operator side holds client.<user>.crt/.key (and ca.crt): the local certs dir."""
        if user not in self.client_users:
            raise BadInput(f"The lab has no client user {user!r}; it has {', '.join(self.client_users)}.")
        return self.local_certs_dir

    @property
    def pids(self) -> list[int]:
        """Pids of every server process still running (listeners and postmasters)."""
        servers = [s for n in self.nodes for s in (n.sshd, n.sql_server)] + [h.sshd for h in self.client_hosts]
        servers += [n.console for n in self.nodes if n.console is not None]
        return [pid for pid in (server.pid for server in servers) if pid is not None]

    def connect_sql(self, node: LabNode | str, user: str = "root", **kwargs) -> "psycopg.Connection":
        """psycopg over TLS to `node` with verify-full and the operator's client.<user> certificate."""
        node = self.node(node) if isinstance(node, str) else node
        return connect_tls(node.address, self.client_certs_dir(user), user, port=node.sql_port, **kwargs)

    def ssh(self, host: LabNode | LabClientHost | str, *, timeout: float = 10.0) -> "paramiko.SSHClient":
        """A paramiko client logged in with the operator key, host keys checked against the lab's known_hosts."""
        import paramiko

        if isinstance(host, str):
            host = self.node(host)
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        client.connect(
            host.address,
            port=host.ssh_port,
            username=self.ssh_user,
            key_filename=str(self.operator_key),
            look_for_keys=False,
            allow_agent=False,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
        )
        return client

    def summary(self) -> str:
        """A few lines for a human: where the state file is and how to reach each host."""
        lines = [f"Lab {self.name}: {len(self.nodes)} nodes; state file {self.state_path}"]
        for node in self.nodes:
            lines.append(
                f"  {node.name}: ssh {self.ssh_user}@{node.address} -p {node.ssh_port}, "
                f"sql {node.sql_addr}, " + (f"console https://{node.http_addr}/, " if node.http_addr else "")
                + f"certs {node.certs_dir}"
            )
        for host in self.client_hosts:
            lines.append(f"  {host.name}: ssh {self.ssh_user}@{host.address} -p {host.ssh_port}, certs {host.certs_dir}")
        return "\n".join(lines)

    def stop(self) -> None:
        """Stop every sshd and PostgreSQL of the lab by pid, release its address block. Idempotent."""
        if self._stopped:
            return
        servers = [n.sshd for n in self.nodes] + [h.sshd for h in self.client_hosts] + [n.sql_server for n in self.nodes]
        servers += [n.console for n in self.nodes if n.console is not None]
        _in_parallel([server.stop for server in servers])
        self._stopped = True
        self._scratch.remove()
        self._lock.release()
        with _live_lock:
            _live_labs.discard(self)
        if self._own_workdir is not None and not keep_lab_files():
            self._own_workdir.remove()


# -- address blocks ---------------------------------------------------------------------------


class _BlockLock:
    """An flock on /tmp/certrotate-lab-locks/127.A.B.lock, held while a lab uses that block."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    def release(self) -> None:
        if self.fd < 0:
            return
        # Unlink while still holding the lock: a claimer that opened the old inode sees
        # that it no longer matches the path and moves on.
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self.fd)
        self.fd = -1


def _try_claim(prefix: str) -> _BlockLock | None:
    if not LOCK_DIR.is_dir():
        with contextlib.suppress(FileExistsError):
            LOCK_DIR.mkdir()
            os.chmod(LOCK_DIR, 0o1777)  # shared by root's and users' labs, like /tmp itself
    path = LOCK_DIR / f"{prefix}lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None  # e.g. another account's lock file: that block is someone else's
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise BlockingIOError
    except OSError:
        os.close(fd)
        return None
    return _BlockLock(fd, path)


def _ports_free(addresses: Iterable[str], ports: Iterable[int]) -> bool:
    ports = list(ports)
    for address in addresses:
        for port in ports:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            # Servers set SO_REUSEADDR, so a port in TIME_WAIT from an earlier lab is fine to them too.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as exc:
                if exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
                    return False
                raise
            finally:
                probe.close()
    return True


def claim_block(host_numbers: Sequence[int], ports: Sequence[int], *, attempts: int = 200) -> tuple[str, _BlockLock]:
    """A free "127.A.B." prefix (locked) where every 127.A.B.<n> has every port free."""
    rng = random.SystemRandom()
    for _ in range(attempts):
        prefix = f"127.{rng.randint(16, 239)}.{rng.randint(0, 255)}."
        lock = _try_claim(prefix)
        if lock is None:
            continue
        if _ports_free((prefix + str(n) for n in host_numbers), ports):
            return prefix, lock
        lock.release()
    port_list = ", ".join(str(port) for port in ports)
    raise CertRotateError(
        f"No free loopback block for the lab after {attempts} tries: ports {port_list} were taken on every "
        "127.x.y.z tried (a server listening on 0.0.0.0 takes them all); choose other ports or stop some labs."
    )


def _taken_on_every_address(port: int) -> bool:
    """True when a wildcard listener (say a real CockroachDB on 0.0.0.0:26257) holds `port`."""
    rng = random.SystemRandom()
    addresses = [f"127.{rng.randint(16, 239)}.{rng.randint(0, 255)}.254" for _ in range(3)]
    return not any(_ports_free([address], [port]) for address in addresses)


def _usable_port(default: int, low: int, high: int, avoid: int | None = None) -> int:
    rng = random.SystemRandom()
    port = default
    for _ in range(50):
        if port != avoid and not _taken_on_every_address(port):
            return port
        port = rng.randint(low, high)
    raise CertRotateError(f"Port {default} and 50 random alternatives are taken on every loopback address.")


def _claim_block_and_ports(
    host_numbers: Sequence[int], ssh_port: int | None, sql_port: int | None, http_port: int | None = None,
    console: bool = False,
) -> tuple[str, _BlockLock, int, int, int | None]:
    """Ports the caller gave are kept; a default port some wildcard listener holds everywhere
    is swapped for a random free one (read them from the nodes, never assume them)."""
    if ssh_port is None:
        ssh_port = _usable_port(DEFAULT_SSH_PORT, 20000, 29999)
    if sql_port is None:
        sql_port = _usable_port(DEFAULT_SQL_PORT, 30000, 39999, avoid=ssh_port)
    if console and http_port is None:
        http_port = _usable_port(DEFAULT_HTTP_PORT, 40000, 49999, avoid=ssh_port)
        if http_port == sql_port:
            http_port = _usable_port(DEFAULT_HTTP_PORT + 1, 40000, 49999, avoid=ssh_port)
    ports = [ssh_port, sql_port] + ([http_port] if console else [])
    prefix, lock = claim_block(host_numbers, ports)
    return prefix, lock, ssh_port, sql_port, (http_port if console else None)


# -- building a lab ---------------------------------------------------------------------------


def make_lab_dir(prefix: str = "certrotate-lab-") -> Path:
    """A new directory under the system temp dir, 0755 so the postgres account can reach it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    return path


def keep_lab_files() -> bool:
    """CERTROTATE_LAB_KEEP=1 keeps a lab's own workdir (logs, configs) after stop(), for debugging."""
    return os.environ.get(KEEP_ENV, "").strip().lower() in ("1", "yes", "true", "on")


def _check_reachable(workdir: Path, account: RunAs) -> None:
    """PostgreSQL runs as `account`: every directory above its files must let it through."""
    if account.is_current:
        return
    for directory in [workdir, *workdir.parents]:
        info = directory.stat()
        if info.st_uid == account.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == account.gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise BadInput(
                f"The lab directory {workdir} is not reachable by the {account.name} account: {directory} "
                f"is mode {stat.S_IMODE(info.st_mode):04o}; use a directory under /tmp (core.lab.make_lab_dir) "
                "or chmod o+x it."
            )


def _mkdir(path: Path, mode: int = 0o755, owner: RunAs | None = None) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner is not None:
        owner.chown(path)
    return path


def _in_parallel(calls: list, max_workers: int = 8) -> None:
    """Run the calls in threads; re-raise the first failure after all have finished."""
    if not calls:
        return
    with ThreadPoolExecutor(max_workers=min(max_workers, len(calls))) as pool:
        futures = [pool.submit(call) for call in calls]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]


def _resolve_ssh_user(ssh_user: str | None) -> str:
    me = RunAs.current()
    if ssh_user is None:
        return me.name
    if not is_root() and ssh_user != me.name:
        raise BadInput(
            f"As {me.name} (not root) the lab's sshd can only log in {me.name}, not {ssh_user!r}; "
            "leave ssh_user unset or run as root."
        )
    RunAs.named(ssh_user)  # one sentence if the account does not exist
    return ssh_user


def start_lab(
    workdir: Path | str | None = None,
    nodes: int = 3,
    *,
    ssh_user: str | None = None,
    clients: Sequence[str] = ("root", "app"),
    ssh_clients: Sequence[str] = (),
    name: str | None = None,
    key_type: str = DEFAULT_KEY_TYPE,
    ssh_port: int | None = None,
    sql_port: int | None = None,
    node_cert_layout: str = "combined",
    client_ca: bool = False,
    console: bool = False,
    http_port: int | None = None,
    issued_at: dt.datetime | None = None,
    ca_lifetime: dt.timedelta | None = None,
    node_lifetime: dt.timedelta | None = None,
    client_lifetime: dt.timedelta | None = None,
    postgres: bool = True,
) -> Lab:
    """Start `nodes` lab nodes with an initial PKI and write the operator's state file.

    `workdir`: an existing or new directory the postgres account can reach (when root);
    None makes one under /tmp, removed again by `stop()` (kept with CERTROTATE_LAB_KEEP=1;
    swept by a later lab if this process dies). `clients`: client certificate
    users (each also a PostgreSQL LOGIN role). `ssh_clients`: those of `clients` whose
    certificates are delivered over SSH to a client host of their own; the others are
    exported locally. `ssh_user`: the login of every sshd (default: the current user,
    i.e. root as root; "postgres" is allowed as root). `ssh_port`/`sql_port`: 2222 and 26257
    unless given; when something listens on them on every address (0.0.0.0), random free
    ports are used instead — read them from the nodes, never assume them.
    `node_cert_layout="split"`: node.crt without CN=node plus client.node.crt/.key on every node,
    and a PostgreSQL role `node` that client.node.crt logs in as. `client_ca=True`: client
    certificates (and client.node.crt) come from a client CA (operator/safe/ca-client.key,
    certs/ca-client.crt), and every node checks client certificates against its ca-client.crt.
    `console`: also run a stand-in for the DB Console's TLS listener per node on `http_port`
    (8080 unless given), filled in as `http_addr` in the state file (core.lab.console).
    `issued_at` and the `*_lifetime`s date the initial PKI, to rehearse a cluster whose CA or
    leaves are about to expire or already have (PostgreSQL keeps serving an expired certificate,
    as CockroachDB does; it is the clients that refuse it).
    `postgres=False`: no PostgreSQL; each node's SQL port is a light stand-in (core/lab/console_server.py
    --sql) that answers the SSLRequest, serves node.crt, checks client certificates against ca.crt (or
    ca-client.crt) and reloads on SIGHUP, but refuses every login: for scale runs of up to 254 nodes
    (without `ssh_clients`), where a PostgreSQL per node would not fit on the machine.
    """
    if node_cert_layout not in NODE_CERT_LAYOUTS:
        raise BadInput(f"node_cert_layout is {node_cert_layout!r}; choose one of {', '.join(NODE_CERT_LAYOUTS)}.")
    split = node_cert_layout == "split"
    most = MAX_NODES if ssh_clients else MAX_NODES_WITHOUT_CLIENT_HOSTS
    if not 1 <= nodes <= most:
        raise BadInput(f"A lab has 1 to {most} nodes, not {nodes}"
                       + (" (199 when clients are delivered over SSH)." if not ssh_clients else "."))
    clients = list(dict.fromkeys(clients))
    for user in clients:
        pki.check_user_name(user)
    unknown = [user for user in ssh_clients if user not in clients]
    if unknown:
        raise BadInput(f"ssh_clients {unknown} are not among the lab's clients {clients}.")
    check_key_type(key_type)
    login = _resolve_ssh_user(ssh_user)
    login_account = RunAs.named(login)
    run_as = default_run_as()

    own_workdir = ScratchDir(WORKDIR_PREFIX, Path(tempfile.gettempdir())) if workdir is None else None
    workdir = own_workdir.path if own_workdir else Path(workdir).absolute()
    host_numbers = list(range(1, nodes + 1)) + [CLIENT_HOST_OFFSET + j for j in range(len(ssh_clients))]
    try:
        _mkdir(workdir)
        _check_reachable(workdir, run_as)
        if postgres:
            initdb_template(run_as)  # once per process; every node copies it
        scratch = ScratchDir("certrotate-lab-data-")
        try:
            prefix, lock, ssh_port, sql_port, http_port = _claim_block_and_ports(
                host_numbers, ssh_port, sql_port, http_port, console)
        except BaseException:
            scratch.remove()
            raise
    except BaseException:
        if own_workdir is not None:
            own_workdir.remove()
        raise
    lab_name = name or f"lab-{prefix.rstrip('.').replace('.', '-')}"
    started: list = []

    def register_server(pid_file: Path, cmdline_marker: str, stop_signal: int = signal.SIGTERM) -> None:
        # In every dir a later sweep may find first: sweeping our own workdir deletes the
        # sshd pid files the data dir's list points at.
        for holder in (scratch, own_workdir):
            if holder is not None:
                holder.register_server(pid_file, cmdline_marker, stop_signal)

    try:
        operator = _mkdir(workdir / "operator")
        local_certs = _mkdir(operator / "certs")
        safe = _mkdir(operator / "safe", 0o700)
        operator_key = operator / OPERATOR_KEY
        generate_ed25519_key(operator_key, f"certrotate-lab-operator@{lab_name}")
        authorized_keys = workdir / "authorized_keys"
        write_public(authorized_keys, operator_key.with_name(OPERATOR_KEY + ".pub").read_bytes(), overwrite=True)

        dates = {"now": issued_at or pki.utcnow()}  # one clock for the whole PKI, so leaves fit inside the CA
        ca = pki.issue_ca(key_type=key_type, common_name=f"Cockroach CA ({lab_name})", **dates,
                          **({"lifetime": ca_lifetime} if ca_lifetime else {}))
        # A leaf never outlives its CA: a lab dated to expire caps its leaves at the CA's end.
        ca_left = ca.certificate.not_valid_after_utc - dates["now"].replace(microsecond=0)
        node_lifetime = min(node_lifetime or pki.LEAF_LIFETIME, ca_left)
        client_lifetime = min(client_lifetime or pki.LEAF_LIFETIME, ca_left)
        write_private(safe / "ca.key", ca.key_pem(), overwrite=True)
        write_public(local_certs / "ca.crt", ca.cert_pem, overwrite=True)
        client_signer = ca
        if client_ca:
            client_signer = pki.issue_ca(key_type=key_type, common_name=f"Cockroach Client CA ({lab_name})", client_ca=True,
                                         **dates, **({"lifetime": ca_lifetime} if ca_lifetime else {}))
            write_private(safe / CLIENT_CA_KEY, client_signer.key_pem(), overwrite=True)
            write_public(local_certs / "ca-client.crt", client_signer.cert_pem, overwrite=True)
        for user in clients:
            issued = pki.issue_client(client_signer, user, key_type=key_type, **dates,
                                      **({"lifetime": client_lifetime} if client_lifetime else {}))
            write_public(local_certs / f"client.{user}.crt", issued.cert_pem, overwrite=True)
            write_private(local_certs / f"client.{user}.key", issued.key_pem(), overwrite=True)

        lab_nodes = []
        for i in range(1, nodes + 1):
            node_name = f"n{i}"
            address = f"{prefix}{i}"
            node_dir = _mkdir(workdir / "nodes" / node_name)
            certs_dir = _mkdir(node_dir / "certs", 0o700, run_as)
            lab_nodes.append(
                LabNode(
                    name=node_name,
                    address=address,
                    ssh_port=ssh_port,
                    sql_port=sql_port,
                    certs_dir=certs_dir,
                    sshd=SshServer(node_dir / "sshd", address, ssh_port, authorized_keys, name=node_name, login_user=login),
                    postgres=PostgresServer(
                        node_dir / "pg",
                        address,
                        sql_port,
                        certs_dir,
                        run_as,
                        name=node_name,
                        data_dir=scratch.path / node_name / "data",
                        socket_dir=scratch.path / node_name / "run",
                        ssl_ca_name="ca-client.crt" if client_ca else "ca.crt",
                    ) if postgres else None,
                    owner=run_as,
                    console=LabConsole(node_dir / "console", address, http_port, certs_dir, run_as, name=node_name)
                    if console and http_port else None,
                    sql_stand_in=None if postgres else LabConsole(
                        node_dir / "sql", address, sql_port, certs_dir, run_as, name=node_name,
                        sql_ca_file="ca-client.crt" if client_ca else "ca.crt"),
                )
            )
        client_hosts = []
        for j, user in enumerate(ssh_clients):
            host_dir = _mkdir(workdir / "clients" / user)
            address = f"{prefix}{CLIENT_HOST_OFFSET + j}"
            client_hosts.append(
                LabClientHost(
                    user=user,
                    name=f"client-{user}",
                    address=address,
                    ssh_port=ssh_port,
                    certs_dir=_mkdir(host_dir / "certs", 0o700, login_account),
                    sshd=SshServer(host_dir / "sshd", address, ssh_port, authorized_keys, name=f"client-{user}", login_user=login),
                )
            )
        for node in lab_nodes:
            if node.postgres is not None:
                register_server(node.postgres.pid_path, str(node.postgres.data_dir), signal.SIGINT)
            if node.sql_stand_in is not None:
                register_server(node.sql_stand_in.pid_path, str(node.sql_stand_in.pid_path))
            register_server(node.sshd.pid_path, str(node.sshd.config_path))
            if node.console is not None:
                register_server(node.console.pid_path, str(node.console.pid_path))
        for host in client_hosts:
            register_server(host.sshd.pid_path, str(host.sshd.config_path))

        def bring_up(node: LabNode) -> None:
            issued = pki.issue_node(ca, node.addresses, key_type=key_type, profile=pki.NODE_PROFILES[node_cert_layout],
                                    **dates, **({"lifetime": node_lifetime} if node_lifetime else {}))
            pg_dir = _mkdir(node.postgres.workdir) if node.postgres is not None else None
            if pg_dir is not None and node.postgres.data_dir.parent != pg_dir:
                link = pg_dir / "data"  # for a human looking around
                if link.is_symlink():
                    link.unlink()  # a workdir reused from an earlier lab
                link.symlink_to(node.postgres.data_dir)
            node.install_node_cert(issued, ca_pem=ca.cert_pem)
            if client_ca:
                node.install_files({"ca-client.crt": client_signer.cert_pem})
            if split:
                client_node = pki.issue_client(client_signer, pki.NODE_USER, key_type=key_type, **dates,
                                               **({"lifetime": node_lifetime} if node_lifetime else {}))
                node.install_files({"client.node.key": client_node.key_pem(), "client.node.crt": client_node.cert_pem})
            started.append(node.sql_server)
            node.sql_server.start()
            if node.postgres is not None:
                node.postgres.create_roles(clients + ([pki.NODE_USER] if split else []))
            if node.console is not None:
                started.append(node.console)
                node.console.start()
            started.append(node.sshd)
            node.sshd.start()

        def bring_up_client_host(host: LabClientHost) -> None:
            for file_name in ("ca.crt", f"client.{host.user}.crt", f"client.{host.user}.key"):
                path = host.certs_dir / file_name
                write = write_private if file_name.endswith(".key") else write_public
                write(path, (local_certs / file_name).read_bytes(), overwrite=True)
                login_account.chown(path)
            started.append(host.sshd)
            host.sshd.start()

        _in_parallel([lambda n=n: bring_up(n) for n in lab_nodes] + [lambda h=h: bring_up_client_host(h) for h in client_hosts])

        known_hosts_lines = [n.sshd.host_key_line() for n in lab_nodes] + [h.sshd.host_key_line() for h in client_hosts]
        write_public(operator / "known_hosts", ("\n".join(known_hosts_lines) + "\n").encode(), overwrite=True)
        write_public(
            operator / STATE_FILE,
            tomli_w.dumps(_state_document(lab_name, key_type, login, lab_nodes, clients, client_hosts,
                                          node_cert_layout=node_cert_layout, client_ca=client_ca)).encode(),
            overwrite=True,
        )
    except BaseException:
        _in_parallel([server.stop for server in started])
        scratch.remove()
        lock.release()
        if own_workdir is not None and not keep_lab_files():
            own_workdir.remove()
        raise

    return Lab(
        workdir=workdir,
        name=lab_name,
        block=prefix,
        ssh_user=login,
        run_as=run_as,
        ca=ca,
        nodes=lab_nodes,
        client_users=clients,
        client_hosts=client_hosts,
        own_workdir=own_workdir,
        lock=lock,
        scratch=scratch,
        client_ca=client_signer if client_ca else None,
        node_cert_layout=node_cert_layout,
    )


def _ssh_fields(address: str, port: int, user: str) -> dict:
    return {
        "ssh_host": address,
        "ssh_port": port,
        "ssh_user": user,
        "ssh_key": OPERATOR_KEY,
        "known_hosts": "known_hosts",
    }


def _state_document(
    lab_name: str,
    key_type: str,
    login: str,
    nodes: list[LabNode],
    clients: list[str],
    client_hosts: list[LabClientHost],
    *,
    node_cert_layout: str = "combined",
    client_ca: bool = False,
) -> dict:
    """The inventory part of the state file, as an operator would write it (docs/state-file.md)."""
    by_user = {host.user: host for host in client_hosts}
    client_entries = []
    for user in clients:
        entry: dict = {"user": user}
        host = by_user.get(user)
        if host is not None:
            entry.update(_ssh_fields(host.address, host.ssh_port, login))
            entry["certs_dir"] = str(host.certs_dir)
        client_entries.append(entry)
    return {
        "cluster": {
            "name": lab_name,
            "profile": "postgres",
            "local_certs_dir": "certs",
            "ca_key": "safe/ca.key",
            "key_type": key_type,
            "node_cert_layout": node_cert_layout,
            **({"client_ca_key": f"safe/{CLIENT_CA_KEY}"} if client_ca else {}),
        },
        "nodes": [
            {
                "name": node.name,
                **_ssh_fields(node.address, node.ssh_port, login),
                "certs_dir": str(node.certs_dir),
                "addresses": node.addresses,
                "sql_addr": node.sql_addr,
                **({"http_addr": node.http_addr} if node.http_addr else {}),
                "reload": node.reload_command,
            }
            for node in nodes
        ],
        "clients": client_entries,
    }
