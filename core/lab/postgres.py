"""One real PostgreSQL server on a loopback address, doing TLS from a cockroach-style certs dir.

    server = PostgresServer(workdir, "127.4.5.1", 26257, certs_dir, run_as=RunAs.named("postgres"))
    server.start()                      # data dir copied from a per-process initdb template
    server.create_roles(["root", "app"])
    server.reload_command               # "kill -HUP $(head -1 .../data/postmaster.pid)"
    server.sql_addr                     # "127.4.5.1:26257"
    server.stop()                       # by pid: fast shutdown (SIGINT), then SIGKILL; idempotent

    conn = connect_tls("127.4.5.1", operator_certs_dir, "root", port=26257)   # verify-full, client cert

The server reads `ca.crt`, `node.crt` and `node.key` from `certs_dir` (ssl_ca_file,
ssl_cert_file, ssl_key_file) and re-reads them on SIGHUP, which is what a rotation relies
on. pg_hba allows `hostssl all all 127.0.0.0/8 cert` (client certificate, CN = database
user) and `local all all trust` on a unix socket in the server's own directory, for lab
administration (`admin_sql`, `connect_admin`).

As root, PostgreSQL runs as `run_as` (the `postgres` account): the data dir, and the
certs dir the lab creates, belong to it, and node.key must be 0600 and owned by it —
PostgreSQL refuses a key others can read. As a normal user everything is that user's.

initdb takes a second or two, so it runs once per process and account into a template
that each server copies (`cp -a`); the template lives on tmpfs when there is one
(core.lab.scratch) and is removed when the process exits. Pass `data_dir` on tmpfs too
for a fast copy (~0.05 s instead of ~1 s on a VM disk); the lab cluster does.
psycopg is imported only by the helpers that return a connection: the demo needs none.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from core.errors import CertRotateError
from core.lab.procs import (
    LabServer,
    RunAs,
    is_root,
    log_tail,
    run_checked,
    stop_pid,
    track_running,
    untrack_running,
)
from core.lab.scratch import ScratchDir

if TYPE_CHECKING:  # psycopg is a test dependency, not a runtime one
    import psycopg

DEFAULT_SQL_PORT = 26257
SUPERUSER = "postgres"
PG_BIN_ENV = "CERTROTATE_PG_BIN"
# sun_path holds 108 bytes; PostgreSQL appends "/.s.PGSQL.<port>" and wants room to spare.
MAX_SOCKET_DIR = 80
PRIVATE_SOCKET_PREFIX = "crlab-pg-"


def pg_bin_dir() -> Path:
    """Where initdb/postgres/psql live: $CERTROTATE_PG_BIN, Debian's newest /usr/lib/postgresql/N/bin, or PATH."""
    configured = os.environ.get(PG_BIN_ENV)
    candidates = [Path(configured)] if configured else []
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent.name), reverse=True)
    candidates += versions
    which = shutil.which("postgres") or shutil.which("initdb")
    if which:
        candidates.append(Path(which).parent)
    for candidate in candidates:
        if (candidate / "postgres").is_file() and (candidate / "initdb").is_file():
            return candidate
    raise CertRotateError(
        "The lab needs PostgreSQL server binaries (initdb, postgres), which were not found; "
        f"install postgresql-15 or set {PG_BIN_ENV}."
    )


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return (0,)


def default_run_as() -> RunAs:
    """`postgres` when we are root (PostgreSQL refuses to run as root), else ourselves."""
    return RunAs.named("postgres") if is_root() else RunAs.current()


# -- initdb template -------------------------------------------------------------------------

_template_lock = threading.Lock()
_templates: dict[tuple[str, int], ScratchDir] = {}


def _remove_templates() -> None:
    for holder in list(_templates.values()):
        holder.remove()
    _templates.clear()


atexit.register(_remove_templates)


def initdb_template(run_as: RunAs) -> Path:
    """A freshly initialised, never started data dir owned by `run_as`, made once per process."""
    bin_dir = pg_bin_dir()
    key = (str(bin_dir), run_as.uid)
    with _template_lock:
        existing = _templates.get(key)
        if existing is not None and (existing.path / "data" / "PG_VERSION").exists():
            return existing.path / "data"
        scratch = ScratchDir("certrotate-pg-template-")
        holder = scratch.path
        data = holder / "data"
        data.mkdir(mode=0o700)
        run_as.chown(data)
        try:
            _initdb(bin_dir, data, holder, run_as)
        except BaseException:
            scratch.remove()
            raise
        _templates[key] = scratch
        return data


def _initdb(bin_dir: Path, data: Path, holder: Path, run_as: RunAs) -> None:
    run_checked(
        [
            str(bin_dir / "initdb"),
            "-D", str(data),
            "-U", SUPERUSER,
            "-A", "trust",
            "-E", "UTF8",
            "--locale=C",
            "--no-sync",
            "--no-instructions",
            # One 16 MB WAL segment per node is most of what each copy costs; 1 MB is plenty here.
            "--wal-segsize=1",
        ],
        "initdb for the lab's PostgreSQL template",
        cwd=holder,
        env=_server_env(run_as),
        stdin=subprocess.DEVNULL,
        **run_as.popen_kwargs(),
    )


def _server_env(run_as: RunAs) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update({"LC_ALL": "C", "LANG": "C", "HOME": run_as.home or "/", "USER": run_as.name, "LOGNAME": run_as.name})
    return env


def _quote_conf(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- the server -------------------------------------------------------------------------------


class PostgresServer(LabServer):
    """A PostgreSQL server in `workdir` (data/, postgres.log, run/ socket dir) on `address:port`.

    `data_dir` and `socket_dir` may live elsewhere (the lab puts them on tmpfs); a socket dir
    whose path is too long for a unix socket is replaced by a short private one under /tmp.
    """

    what = "PostgreSQL server"

    def __init__(
        self,
        workdir: Path,
        address: str,
        port: int = DEFAULT_SQL_PORT,
        certs_dir: Path | None = None,
        run_as: RunAs | None = None,
        *,
        name: str | None = None,
        data_dir: Path | None = None,
        socket_dir: Path | None = None,
        start_timeout: float = 30.0,
        ssl_ca_name: str = "ca.crt",
    ) -> None:
        self.workdir = Path(workdir)
        self.address = address
        self.port = port
        self.certs_dir = Path(certs_dir) if certs_dir else self.workdir / "certs"
        self.run_as = run_as or default_run_as()
        self.name = name or address
        self.start_timeout = start_timeout
        # PostgreSQL checks client certificates against ssl_ca_file: "ca-client.crt" makes the node
        # behave like a CockroachDB node with a separate client CA.
        self.ssl_ca_name = ssl_ca_name
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.log_path = self.workdir / "postgres.log"
        self.pid_path = self.data_dir / "postmaster.pid"
        socket_dir = Path(socket_dir) if socket_dir else self.workdir / "run"
        self._private_socket_dir = len(str(socket_dir)) > MAX_SOCKET_DIR
        # A too-long socket dir is swapped for a short private one when the server starts.
        self.socket_dir = socket_dir
        self._process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"PostgresServer({self.name} on {self.sql_addr}, pid={self.pid})"

    @property
    def sql_addr(self) -> str:
        return f"{self.address}:{self.port}"

    # -- files ----------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the data dir (from the template) and write the lab's settings; idempotent."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        if self._private_socket_dir and not self.socket_dir.name.startswith(PRIVATE_SOCKET_PREFIX):
            self.socket_dir = Path(tempfile.mkdtemp(prefix=PRIVATE_SOCKET_PREFIX))
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.socket_dir, 0o755)
        self.run_as.chown(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            template = initdb_template(self.run_as)
            run_checked(["cp", "-a", str(template), str(self.data_dir)], f"Copying the PostgreSQL template for {self.name}")
        self._write_settings()

    def _write_settings(self) -> None:
        settings = {
            "listen_addresses": _quote_conf(self.address),
            "port": str(self.port),
            "unix_socket_directories": _quote_conf(str(self.socket_dir)),
            "ssl": "on",
            "ssl_cert_file": _quote_conf(str(self.certs_dir / "node.crt")),
            "ssl_key_file": _quote_conf(str(self.certs_dir / "node.key")),
            "ssl_ca_file": _quote_conf(str(self.certs_dir / self.ssl_ca_name)),
            # Small and disposable: several labs share one machine with the tests.
            "max_connections": "40",
            "shared_buffers": "16MB",
            "dynamic_shared_memory_type": "mmap",
            "huge_pages": "off",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "wal_level": "minimal",
            "max_wal_senders": "0",
            "autovacuum": "off",
            "logging_collector": "off",
            "log_connections": "on",
            "log_line_prefix": _quote_conf("%m [%p] "),
        }
        conf = "# certrotate lab settings\n" + "".join(f"{key} = {value}\n" for key, value in settings.items())
        # The template's postgresql.conf ends up before ours; later lines win.
        (self.data_dir / "postgresql.auto.conf").write_text(conf)
        (self.data_dir / "pg_hba.conf").write_text(
            "# certrotate lab: admin over the unix socket, SQL clients by certificate (CN = user)\n"
            "local   all  all                 trust\n"
            "hostssl all  all  127.0.0.0/8    cert\n"
        )
        for written in ("postgresql.auto.conf", "pg_hba.conf"):
            os.chmod(self.data_dir / written, 0o600)
            self.run_as.chown(self.data_dir / written)

    # -- process --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the postmaster and return once it accepts connections; a no-op while it runs."""
        if self.running:
            return
        self.prepare()
        track_running(self)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [str(pg_bin_dir() / "postgres"), "-D", str(self.data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=_server_env(self.run_as),
                start_new_session=True,
                **self.run_as.popen_kwargs(),
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                self._process = None
                untrack_running(self)
                raise CertRotateError(
                    f"PostgreSQL for {self.name} on {self.sql_addr} did not start: {log_tail(self.log_path)}"
                )
            if self._postmaster_status() == "ready":
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise CertRotateError(
                    f"PostgreSQL for {self.name} on {self.sql_addr} was not ready within "
                    f"{self.start_timeout:.0f} s: {log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _postmaster_status(self) -> str | None:
        """Line 8 of postmaster.pid: "starting", "ready", "stopping" (PostgreSQL ≥ 10)."""
        try:
            lines = self.pid_path.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 8 or self._process is None or lines[0].strip() != str(self._process.pid):
            return None
        return lines[7].strip()

    def stop(self) -> None:
        """Fast shutdown (SIGINT: sessions are ended, not waited for), SIGKILL after 15 s. Idempotent."""
        pid = self.pid
        stop_pid(pid, first_signal=signal.SIGINT, timeout=15.0, process=self._process, with_descendants=True)
        self._process = None
        untrack_running(self)
        if self._private_socket_dir and self.socket_dir.name.startswith(PRIVATE_SOCKET_PREFIX):
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    # -- administration ---------------------------------------------------------------------

    def admin_sql(self, sql: str, *, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the unix socket with psql; returns its unaligned output."""
        result = run_checked(
            [
                str(pg_bin_dir() / "psql"),
                "-X", "-q", "-A", "-t",
                "-v", "ON_ERROR_STOP=1",
                "-h", str(self.socket_dir),
                "-p", str(self.port),
                "-U", SUPERUSER,
                "-d", dbname,
                "-c", sql,
            ],
            f"SQL on the lab's PostgreSQL {self.name}",
            env={k: v for k, v in os.environ.items() if not k.startswith("PG")},
            stdin=subprocess.DEVNULL,
        )
        return result.stdout.strip()

    def create_roles(self, users: Iterable[str]) -> None:
        """LOGIN roles for client certificate users (CN = role name); existing ones are kept."""
        statements = []
        for user in users:
            if user == SUPERUSER:
                continue
            literal = "'" + user.replace("'", "''") + "'"
            statements.append(
                f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal}) "
                f"THEN CREATE ROLE {quote_ident(user)} LOGIN; END IF; END$$;"
            )
        if statements:
            self.admin_sql("\n".join(statements))

    def connect_admin(self, *, dbname: str = "postgres") -> "psycopg.Connection":
        """A psycopg connection as the superuser over the unix socket (autocommit)."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=SUPERUSER, dbname=dbname, autocommit=True, connect_timeout=10
        )


def connect_tls(
    address: str,
    certs_dir: Path,
    user: str,
    *,
    port: int = DEFAULT_SQL_PORT,
    dbname: str = "postgres",
    ca_file: Path | None = None,
    timeout: int = 10,
) -> "psycopg.Connection":
    """A psycopg connection over TLS with sslmode=verify-full (server cert checked against `address`,
    an IP SAN in the lab) and the client certificate `certs_dir/client.<user>.crt`/`.key`."""
    import psycopg

    certs_dir = Path(certs_dir)
    return psycopg.connect(
        host=address,
        port=port,
        user=user,
        dbname=dbname,
        sslmode="verify-full",
        sslrootcert=str(ca_file or certs_dir / "ca.crt"),
        sslcert=str(certs_dir / f"client.{user}.crt"),
        sslkey=str(certs_dir / f"client.{user}.key"),
        connect_timeout=timeout,
        autocommit=True,
    )
