"""SSH to the cluster's nodes: one checked, authenticated connection per host per run.

`SshPool` owns the connections of a run; `pool.session(node)` gives the `HostSession` of
one node, which connects lazily and reconnects after a failure. Every public operation
of a session is a *host step* with a wall-clock deadline: if the host does not finish it
in time, a watchdog closes the connection (unblocking whatever paramiko call was
waiting) and the step fails with one sentence naming the host. Steps nest: an engine
may wrap several operations in `session.step(...)` so that they share one deadline.

Connection settings come from the node (ssh_host, ssh_port, ssh_user, ssh_key,
known_hosts) over ~/.ssh/config (Host aliases, HostName, User, Port, IdentityFile,
IdentitiesOnly, ProxyJump, HostKeyAlias), like `ssh -p PORT -l USER -i KEY HOST` does.
Host keys are checked strictly against known_hosts (see core.remote.known_hosts).

Remote file operations (atomic upload, backups, restore) live in core.remote.remote_files.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
import posixpath
import shlex
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paramiko

from core.errors import BadInput, CertRotateError, StepFailed
from core.remote.deadlines import Deadline
from core.remote.known_hosts import (
    DEFAULT_KNOWN_HOSTS,
    check_host_key,
    host_key_name,
    known_keys,
    preferred_host_key_types,
)

log = logging.getLogger("certrotate.ssh")
# paramiko's transport thread logs a failed handshake (say, no banner) with its traceback at
# ERROR; with no handler anywhere, Python's last-resort handler would print it on stderr
# beside our one sentence (and over the wizard's screen). Applications that configure
# logging still receive these records: a NullHandler does not stop propagation.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

DEFAULT_SSH_CONFIG = Path("~/.ssh/config")
DEFAULT_IDENTITY_FILES = ("~/.ssh/id_ed25519", "~/.ssh/id_ecdsa", "~/.ssh/id_rsa")
MAX_CAPTURED_OUTPUT = 1 << 20


class HostUnreachable(StepFailed):
    """No SSH session could be opened: refused, timed out, no banner, no route."""


class HostTimeout(StepFailed):
    """A host step did not finish within its deadline."""


class LoginRefused(StepFailed):
    """sshd answered but accepted none of our keys for the user."""


@dataclass(frozen=True)
class SshTarget:
    """How to reach one node over SSH: the `[[nodes]]` fields of the state file that SSH needs.

    Unset fields (None) fall back to ~/.ssh/config and then to OpenSSH's defaults
    (port 22, the local user name, ssh-agent and ~/.ssh/id_*), exactly as `ssh` does.
    """

    name: str
    ssh_host: str
    ssh_port: int | None = None
    ssh_user: str | None = None
    ssh_key: str | None = None
    known_hosts: str | None = None
    certs_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise BadInput("A node has no name; give every [[nodes]] entry a unique name.")
        if not self.ssh_host:
            raise BadInput(f"Node {self.name} has no ssh_host; set it to a host name, address or ~/.ssh/config alias.")
        if self.ssh_port is not None and not (isinstance(self.ssh_port, int) and 0 < self.ssh_port < 65536):
            raise BadInput(f"Node {self.name} has ssh_port {self.ssh_port!r}; use a port number between 1 and 65535.")
        if self.certs_dir is not None:
            check_remote_path(self.certs_dir, f"certs_dir of node {self.name}")

    @classmethod
    def from_node(cls, node: Any, base_dir: Path | None = None) -> SshTarget:
        """Build a target from a `[[nodes]]` mapping or any object with those attributes.

        Relative `ssh_key` / `known_hosts` paths are taken relative to `base_dir` (the state
        file's directory) when given.
        """
        if isinstance(node, SshTarget):
            return node
        if isinstance(node, Mapping):
            get = node.get
        else:
            def get(name: str, default: Any = None) -> Any:
                return getattr(node, name, default)
        port = get("ssh_port")
        if isinstance(port, str) and port.isdigit():
            port = int(port)
        return cls(
            name=str(get("name") or ""),
            ssh_host=str(get("ssh_host") or ""),
            ssh_port=port,
            ssh_user=get("ssh_user") or None,
            ssh_key=_local_path(get("ssh_key"), base_dir),
            known_hosts=_local_path(get("known_hosts"), base_dir),
            certs_dir=get("certs_dir") or None,
        )


def _local_path(value: Any, base_dir: Path | None) -> str | None:
    if not value:
        return None
    path = Path(os.fspath(value)).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = Path(base_dir) / path
    return str(path)


def check_remote_path(path: str, what: str) -> str:
    """Refuse remote paths we could misplace files with: relative, `..`, control characters."""
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadInput(f"The {what} {path!r} is not an absolute path; write the full path on the node, e.g. /var/lib/cockroach/certs.")
    if any(ord(c) < 32 for c in path) or "/../" in path + "/" or "/./" in path + "/":
        raise BadInput(f"The {what} {path!r} contains control characters or . / .. components; write a plain absolute path.")
    return path


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `step` is the wall-clock deadline of one host step (connecting included)."""

    connect: float = 10.0
    banner: float = 10.0
    auth: float = 15.0
    step: float = 60.0
    keepalive: int = 15


@dataclass(frozen=True)
class Endpoint:
    """A target resolved through ~/.ssh/config: where to connect, as whom, with which keys."""

    hostname: str
    port: int
    user: str
    key_files: tuple[str, ...]
    explicit_key: bool
    identities_only: bool
    proxy_jump: str | None
    host_key_alias: str | None

    @property
    def host_key_name(self) -> str:
        return host_key_name(self.host_key_alias or self.hostname, self.port)

    @property
    def address(self) -> str:
        host = f"[{self.hostname}]" if ":" in self.hostname else self.hostname
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class CommandResult:
    """What a remote command did. Output is decoded leniently and capped at 1 MiB."""

    host: str
    command: str
    exit_status: int
    stdout: str = field(repr=False)
    stderr: str = field(repr=False)
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def output(self) -> str:
        """stderr and stdout, squeezed onto one line, short enough for a sentence."""
        return one_line(" ".join(part for part in (self.stderr, self.stdout) if part.strip()))


def one_line(text: str, limit: int = 300) -> str:
    squeezed = " ".join(text.split())
    return squeezed if len(squeezed) <= limit else squeezed[: limit - 1] + "…"


def load_ssh_config(path: Path | str | None) -> paramiko.SSHConfig:
    if path is None:
        return paramiko.SSHConfig()
    path = Path(path).expanduser()
    try:
        return paramiko.SSHConfig.from_path(path)
    except FileNotFoundError:
        return paramiko.SSHConfig()
    except (OSError, paramiko.ConfigParseError, ValueError) as exc:
        raise BadInput(f"Cannot read the SSH config {path}: {exc}; fix the file or remove it.") from None


def resolve_endpoint(
    ssh_host: str,
    config: paramiko.SSHConfig,
    *,
    port: int | None = None,
    user: str | None = None,
    key: str | None = None,
) -> Endpoint:
    """Apply ~/.ssh/config to a host: explicit values win, then the config, then defaults.

    `port` 22 counts as unset, because the inventory fills in 22 when ssh_port is absent:
    a `Port` in ~/.ssh/config then still applies, as it would for plain `ssh HOST`.
    """
    options = config.lookup(ssh_host)
    config_port = options.get("port")
    try:
        resolved_port = port if port not in (None, 22) else (int(config_port) if config_port else 22)
    except ValueError:
        raise BadInput(f"~/.ssh/config gives Port {config_port!r} for {ssh_host}; use a number.") from None
    if key:
        key_files: tuple[str, ...] = (key,)
    else:
        key_files = tuple(options.get("identityfile", ()))
    proxy_jump = options.get("proxyjump")
    if proxy_jump and proxy_jump.strip().lower() == "none":
        proxy_jump = None
    return Endpoint(
        hostname=options.get("hostname", ssh_host),
        port=resolved_port,
        user=user or options.get("user") or getpass.getuser(),
        key_files=key_files,
        explicit_key=bool(key),
        identities_only=options.get("identitiesonly", "no").lower() == "yes",
        proxy_jump=proxy_jump,
        host_key_alias=options.get("hostkeyalias"),
    )


def parse_jump(spec: str) -> tuple[str | None, str, int | None]:
    """`[user@]host[:port]` of a ProxyJump hop (also `ssh://user@host:port`)."""
    spec = spec.strip()
    if spec.startswith("ssh://"):
        spec = spec[len("ssh://"):]
    user, _, hostport = spec.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):
        host, _, rest = hostport[1:].partition("]")
        if rest.startswith(":") and rest[1:].isdigit():
            port = int(rest[1:])
    elif hostport.count(":") == 1:
        host, _, port_text = hostport.partition(":")
        if not port_text.isdigit():
            raise BadInput(f"ProxyJump hop {spec!r} has port {port_text!r}; use [user@]host[:port].")
        port = int(port_text)
    return (user or None), host, port


AEAD_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")


def prefer_aead(offered: tuple[str, ...] | list[str]) -> list[str]:
    """AES-GCM first, where both sides have it (every OpenSSH since 6.2 does): it authenticates each
    packet as part of decrypting it, where CTR plus HMAC costs paramiko a MAC and a byte-by-byte
    comparison in Python per packet, and a run exchanges thousands of packets."""
    first = [cipher for cipher in AEAD_CIPHERS if cipher in offered]
    return first + [cipher for cipher in offered if cipher not in first]


def _seconds(value: float) -> str:
    return f"{value:g} s"


class RunningCommand:
    """A command started on a host (HostSession.start); `result()` collects its output and exit status."""

    def __init__(self, session: HostSession, command: str, channel: paramiko.Channel,
                 transport: paramiko.Transport, started: float):
        self.session = session
        self.command = command
        self._channel = channel
        self._transport = transport
        self._started = started
        self._result: CommandResult | None = None

    def result(self) -> CommandResult:
        if self._result is None:
            with self.session.step(f"running `{one_line(self.command, 80)}`"):
                try:
                    status, stdout, stderr = self._collect()
                finally:
                    self._channel.close()
            self._result = CommandResult(
                host=self.session.name,
                command=self.command,
                exit_status=status,
                stdout=stdout.decode("utf-8", errors="replace"),
                stderr=stderr.decode("utf-8", errors="replace"),
                seconds=round(time.monotonic() - self._started, 3),
            )
        return self._result

    def _collect(self) -> tuple[int, bytes, bytes]:
        """Read until the exit status and EOF are in. Between reads it sleeps on the channel's
        status event, which paramiko sets when the exit status comes or the channel closes
        (also when the connection dies, or the step's deadline closes it)."""
        channel, transport = self._channel, self._transport
        stdout, stderr = bytearray(), bytearray()
        while True:
            while channel.recv_ready():
                chunk = channel.recv(65536)
                if len(stdout) < MAX_CAPTURED_OUTPUT:
                    stdout += chunk
            while channel.recv_stderr_ready():
                chunk = channel.recv_stderr(65536)
                if len(stderr) < MAX_CAPTURED_OUTPUT:
                    stderr += chunk
            if channel.exit_status_ready():
                if channel.eof_received or channel.closed:
                    if not channel.recv_ready() and not channel.recv_stderr_ready():
                        break
                    continue
                time.sleep(0.001)  # the status came before the end of the output: it follows at once
            elif not transport.is_active():
                raise EOFError("connection closed")
            else:
                channel.status_event.wait(0.05)
        status = channel.recv_exit_status()
        if status == -1 and not transport.is_active():
            raise EOFError("connection closed before the command's exit status arrived")
        return status, bytes(stdout), bytes(stderr)


class HostSession:
    """The connection to one node for the whole run, plus one SFTP client per thread."""

    def __init__(self, pool: SshPool, target: SshTarget, endpoint: Endpoint, known_hosts: Path, *, via: HostSession | None):
        self.pool = pool
        self.target = target
        self.endpoint = endpoint
        self.known_hosts = known_hosts
        self.via = via
        self.name = target.name
        self.label = f"{target.name} ({endpoint.address})"
        self._lock = threading.RLock()
        self.files_lock = threading.RLock()  # serialises backup-manifest updates on this host
        self._transport: paramiko.Transport | None = None
        self._connecting: list[Any] = []
        self._sftp: dict[int, paramiko.SFTPClient] = {}
        self._local = threading.local()

    # -- deadlines -------------------------------------------------------------------

    @contextlib.contextmanager
    def step(self, what: str, timeout: float | None = None) -> Iterator[None]:
        """Run the body as one host step: it finishes within `timeout` seconds or fails naming the host.

        Inside an outer step the outer deadline applies and `timeout` is ignored.
        Connection errors inside the step become one StepFailed sentence.
        """
        if getattr(self._local, "watchdog", None) is not None:
            yield
            return
        seconds = timeout if timeout is not None else self.pool.timeouts.step
        watchdog = Deadline(seconds, self._abort)
        self._local.watchdog = watchdog
        timed_out = HostTimeout(
            f"{self.label} did not answer within {_seconds(seconds)} while {what}; check that the "
            f"host is up and not overloaded, then run the step again."
        )
        try:
            yield
            if watchdog.expired:
                # The watchdog closed the connection under us; whatever the body got is not to be trusted.
                raise timed_out
        except HostTimeout:
            raise
        except Exception as exc:
            if watchdog.expired:
                raise timed_out from None
            if isinstance(exc, CertRotateError):
                raise
            if isinstance(exc, (EOFError, OSError, paramiko.SSHException)):
                self._drop_connection()
                raise StepFailed(
                    f"The SSH connection to {self.label} broke while {what} ({one_line(str(exc) or type(exc).__name__)}); "
                    f"check the host and run the step again."
                ) from None
            raise
        finally:
            watchdog.cancel()
            self._local.watchdog = None

    def remaining(self) -> float | None:
        watchdog = getattr(self._local, "watchdog", None)
        return None if watchdog is None else watchdog.remaining()

    def _abort(self) -> None:
        """Watchdog: close whatever the stuck call is waiting on; the call then raises."""
        self._abort_connecting()
        transport = self._transport
        if transport is not None:
            with contextlib.suppress(Exception):
                transport.close()

    def _abort_connecting(self) -> None:
        # A jump host still connecting is ours to stop too; an established one serves other nodes.
        with contextlib.suppress(Exception):
            for thing in list(self._connecting):
                thing.close()
        if self.via is not None:
            self.via._abort_connecting()

    # -- connection ------------------------------------------------------------------

    def transport(self) -> paramiko.Transport:
        """The live, authenticated transport; connects (within the current step) if needed."""
        with self.step(f"connecting to {self.label}"):
            with self._lock:
                transport = self._transport
                if transport is not None and transport.is_active() and transport.is_authenticated():
                    return transport
                self._drop_connection()
                self._transport = self._connect()
                return self._transport

    def _drop_connection(self) -> None:
        with self._lock:
            for client in self._sftp.values():
                with contextlib.suppress(Exception):
                    client.close()
            self._sftp.clear()
            if self._transport is not None:
                with contextlib.suppress(Exception):
                    self._transport.close()
            self._transport = None

    def _open_socket(self) -> Any:
        endpoint, timeouts = self.endpoint, self.pool.timeouts
        remaining = self.remaining()
        budget = timeouts.connect if remaining is None else max(0.1, min(timeouts.connect, remaining))
        if self.via is not None:
            jump = self.via.transport()
            try:
                return jump.open_channel(
                    "direct-tcpip", (endpoint.hostname, endpoint.port), ("127.0.0.1", 0), timeout=budget
                )
            except paramiko.ChannelException as exc:
                raise HostUnreachable(
                    f"The jump host {self.via.label} could not reach {self.label} ({exc.text}); check ssh_host "
                    f"and the ProxyJump in ~/.ssh/config."
                ) from None
        try:
            sock = socket.create_connection((endpoint.hostname, endpoint.port), timeout=budget)
        except socket.gaierror:
            raise HostUnreachable(
                f"{self.name}: cannot resolve the host name {endpoint.hostname!r}; check ssh_host "
                f"(or its HostName in ~/.ssh/config)."
            ) from None
        except ConnectionRefusedError:
            raise HostUnreachable(
                f"{self.label} refused the SSH connection; check that sshd is running there and that ssh_port is right."
            ) from None
        except (TimeoutError, socket.timeout):
            raise HostUnreachable(
                f"{self.label} did not answer within {_seconds(budget)}; check the address, the port and firewalls."
            ) from None
        except OSError as exc:
            raise HostUnreachable(
                f"{self.label} is unreachable ({exc.strerror or exc}); check ssh_host, ssh_port and the network."
            ) from None
        # Every SFTP request and channel open is a small message that waits for its answer. With Nagle's
        # algorithm on, one sent while the previous is not yet acknowledged waits for the peer's delayed
        # ACK: 40 ms per stat, rename or command on Linux, most of a node's wall time in a step.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _connect(self) -> paramiko.Transport:
        endpoint, timeouts = self.endpoint, self.pool.timeouts
        sock = self._open_socket()
        self._connecting = [sock]
        transport: paramiko.Transport | None = None
        try:
            transport = paramiko.Transport(sock)
            self._connecting.append(transport)
            transport.banner_timeout = timeouts.banner
            transport.handshake_timeout = timeouts.banner + timeouts.auth
            transport.auth_timeout = timeouts.auth
            options = transport.get_security_options()
            known = known_keys(self.known_hosts, endpoint.host_key_name)
            options.key_types = preferred_host_key_types(known, options.key_types)
            options.ciphers = prefer_aead(options.ciphers)
            try:
                transport.start_client(timeout=timeouts.banner + timeouts.auth)
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if "banner" in str(exc).lower():
                    raise HostUnreachable(
                        f"{self.label} accepted the connection but sent no SSH banner within "
                        f"{_seconds(timeouts.banner)}; check that ssh_port points at sshd and that sshd is not overloaded."
                    ) from None
                raise HostUnreachable(
                    f"SSH negotiation with {self.label} failed ({one_line(str(exc) or type(exc).__name__)}); "
                    f"check that ssh_port points at an OpenSSH server."
                ) from None
            check_host_key(self.known_hosts, self.name, endpoint.host_key_name, transport.get_remote_server_key())
            self._authenticate(transport)
            transport.set_keepalive(timeouts.keepalive)
            log.debug("connected to %s as %s", self.label, endpoint.user)
            return transport
        except BaseException:
            if transport is not None:
                with contextlib.suppress(Exception):
                    transport.close()
            with contextlib.suppress(Exception):
                sock.close()
            raise
        finally:
            self._connecting = []

    def _candidate_keys(self, problems: list[str]) -> Iterator[tuple[str, paramiko.PKey]]:
        """Keys to offer, in order: the node's ssh_key (or config IdentityFile), ssh-agent, ~/.ssh/id_*.

        Key files that cannot be used are described in `problems` for the error sentence.
        """
        endpoint = self.endpoint
        offered: set[bytes] = set()

        def load(path_text: str) -> paramiko.PKey | None:
            path = Path(path_text).expanduser()
            try:
                return self.pool.private_key(path)
            except FileNotFoundError:
                problems.append(f"{path} does not exist")
            except paramiko.PasswordRequiredException:
                problems.append(f"{path} is passphrase-protected (add it to ssh-agent with ssh-add)")
            except (paramiko.SSHException, OSError, ValueError) as exc:
                problems.append(f"{path} is not a usable private key ({one_line(str(exc), 80)})")
            return None

        for path_text in endpoint.key_files:
            key = load(path_text)
            if key is not None and key.asbytes() not in offered:
                offered.add(key.asbytes())
                yield str(Path(path_text).expanduser()), key
        agent_allowed = not endpoint.identities_only and not (endpoint.explicit_key and offered)
        if agent_allowed:
            for key in self.pool.agent_keys():
                if key.asbytes() not in offered:
                    offered.add(key.asbytes())
                    yield "an ssh-agent key", key
        if not endpoint.key_files:
            for path_text in DEFAULT_IDENTITY_FILES:
                if Path(path_text).expanduser().exists():
                    key = load(path_text)
                    if key is not None and key.asbytes() not in offered:
                        offered.add(key.asbytes())
                        yield str(Path(path_text).expanduser()), key

    def _authenticate(self, transport: paramiko.Transport) -> None:
        user = self.endpoint.user
        tried: list[str] = []
        problems: list[str] = []
        for source, key in self._candidate_keys(problems):
            try:
                remaining = transport.auth_publickey(user, key)
            except paramiko.BadAuthenticationType as exc:
                raise LoginRefused(
                    f"{self.label} does not accept public-key login for {user} (it offers "
                    f"{', '.join(exc.allowed_types) or 'nothing'}); allow PubkeyAuthentication for {user} in sshd_config."
                ) from None
            except paramiko.AuthenticationException as exc:
                if "timeout" in str(exc).lower():
                    raise HostUnreachable(
                        f"{self.label} did not finish the login within {_seconds(self.pool.timeouts.auth)}; "
                        f"check that sshd on the host is not overloaded."
                    ) from None
                tried.append(source)
                continue
            if transport.is_authenticated():
                return
            raise LoginRefused(
                f"{self.label} wants a further login step for {user} ({', '.join(remaining)}) after the key; "
                f"certrotate logs in with a key only, so use an account that needs nothing else."
            )
        offered = ", ".join(tried) if tried else "no key at all"
        hint = f" ({'; '.join(problems)})" if problems else ""
        raise LoginRefused(
            f"{self.label} refused login as {user} with {offered}{hint}; check ssh_user and ssh_key, "
            f"or add the key to ssh-agent."
        )

    # -- channels --------------------------------------------------------------------

    def sftp(self) -> paramiko.SFTPClient:
        """This thread's SFTP client on the host's connection (paramiko's client is not thread-safe)."""
        transport = self.transport()
        key = threading.get_ident()
        with self._lock:
            client = self._sftp.get(key)
            if client is not None and client.get_channel().get_transport() is transport and not client.get_channel().closed:
                return client
            # Threads come and go (worker pools); their clients hold channels, and sshd allows
            # only MaxSessions (default 10) of those per connection.
            alive = {thread.ident for thread in threading.enumerate()}
            for ident in [i for i in self._sftp if i not in alive or i == key]:
                with contextlib.suppress(Exception):
                    self._sftp.pop(ident).close()
            try:
                client = paramiko.SFTPClient.from_transport(transport)
            except paramiko.SSHException as exc:
                raise StepFailed(
                    f"{self.label} does not offer SFTP ({one_line(str(exc))}); enable `Subsystem sftp` in its sshd_config."
                ) from None
            if client is None:
                raise StepFailed(f"{self.label} refused an SFTP session; enable `Subsystem sftp` in its sshd_config.")
            self._sftp[key] = client
            return client

    def run(self, command: str, *, timeout: float | None = None, stdin: bytes | None = None) -> CommandResult:
        """Run `command` with the login shell; capture exit status, stdout and stderr.

        `timeout` bounds this command (within any enclosing step); it defaults to the step deadline.
        Quote every path you put in `command` with shlex.quote.
        """
        with self.step(f"running `{one_line(command, 80)}`", timeout):
            return self.start(command, stdin=stdin).result()

    def start(self, command: str, *, stdin: bytes | None = None) -> RunningCommand:
        """Start `command` and return at once; `.result()` waits for it (within its own step).

        The command runs on a channel of its own, so SFTP work on the same connection can go
        on meanwhile: the login shell's start-up on the host then costs no extra wall time.
        """
        started = time.monotonic()
        with self.step(f"running `{one_line(command, 80)}`"):
            transport = self.transport()
            try:
                channel = transport.open_session(timeout=self.remaining())
            except paramiko.ChannelException as exc:
                raise StepFailed(
                    f"{self.label} refused to run a command ({exc.text}); certrotate needs a shell account there, "
                    f"not an SFTP-only one."
                ) from None
            try:
                try:
                    channel.exec_command(command)
                except paramiko.SSHException as exc:
                    if transport.is_active():
                        raise StepFailed(
                            f"{self.label} refused to run a command ({exc}); certrotate needs a shell account "
                            f"there, not an SFTP-only one."
                        ) from None
                    raise
                if stdin:
                    channel.sendall(stdin)
                channel.shutdown_write()
            except BaseException:
                channel.close()
                raise
        return RunningCommand(self, command, channel, transport, started)

    def reload(self, command: str, *, timeout: float | None = None) -> CommandResult:
        """Run the node's reload command; a failure becomes one StepFailed sentence."""
        try:
            result = self.run(command, timeout=timeout)
        except HostTimeout:
            raise HostTimeout(
                f"reload on {self.name} did not finish within "
                f"{_seconds(timeout or self.pool.timeouts.step)} (`{one_line(command, 80)}`); check the "
                f"command and the service on {self.name}."
            ) from None
        if result.ok:
            return result
        detail = f"`{one_line(command, 80)}` exited {result.exit_status}" + (
            f": {result.output}" if result.output else ", no output"
        )
        if no_process_to_signal(result):
            raise StepFailed(
                f"reload on {self.name} failed: no process to signal ({detail}); start the database on "
                f"{self.name} or fix its reload command."
            )
        raise StepFailed(f"reload on {self.name} failed: {detail}; fix the reload command or the service on {self.name}.")

    def close(self) -> None:
        self._drop_connection()


_NO_PROCESS_SIGNS = (
    "no such process",
    "no process found",
    "no process killed",
    "no matching process",
    "not running",
    "no server running",
    "is not active",
    "inactive (dead)",
    "not loaded",
)


def no_process_to_signal(result: CommandResult) -> bool:
    """Whether a failed reload failed because the database process is not running."""
    text = f"{result.stdout}\n{result.stderr}".lower()
    if any(sign in text for sign in _NO_PROCESS_SIGNS):
        return True
    if ".pid" in text and "no such file" in text:
        return True  # `kill -HUP $(cat x.pid)`: the server removes its pid file when it stops
    # pkill and pgrep exit 1 exactly when no process matched (2 and 3 are usage and fatal errors).
    try:
        words = shlex.split(result.command)
    except ValueError:
        words = result.command.split()
    uses_pkill = any(posixpath.basename(word) in ("pkill", "pgrep") for word in words)
    return uses_pkill and result.exit_status == 1


class SshPool:
    """The SSH connections of one run: one `HostSession` per node, jump hosts shared.

    Use as a context manager, or call `close()`; both close every connection.
    """

    def __init__(
        self,
        *,
        ssh_config: Path | str | None = DEFAULT_SSH_CONFIG,
        known_hosts: Path | str | None = None,
        timeouts: Timeouts = Timeouts(),
        use_agent: bool = True,
    ):
        self.config = load_ssh_config(ssh_config)
        self.default_known_hosts = Path(known_hosts or DEFAULT_KNOWN_HOSTS).expanduser()
        self.timeouts = timeouts
        self.use_agent = use_agent
        self._sessions: dict[str, HostSession] = {}
        self._jumps: dict[tuple[str, str], HostSession] = {}
        self._lock = threading.Lock()
        self._agent: paramiko.Agent | None = None
        self._keys: dict[Path, tuple[tuple[int, int, int], paramiko.PKey]] = {}

    def __enter__(self) -> SshPool:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def private_key(self, path: Path) -> paramiko.PKey:
        """The key in `path`, parsed once per run however many nodes log in with it (re-read if the file changes)."""
        info = path.stat()
        stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
        with self._lock:
            cached = self._keys.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        key = paramiko.PKey.from_path(path)
        with self._lock:
            self._keys[path] = (stamp, key)
        return key

    def agent_keys(self) -> tuple[paramiko.AgentKey, ...]:
        if not self.use_agent or not os.environ.get("SSH_AUTH_SOCK"):
            return ()
        with self._lock:
            if self._agent is None:
                try:
                    self._agent = paramiko.Agent()
                except (paramiko.SSHException, OSError):
                    return ()
            return tuple(self._agent.get_keys())

    def session(self, node: Any, base_dir: Path | None = None) -> HostSession:
        """The session of `node` (an SshTarget, a [[nodes]] mapping or object); created once per run."""
        target = SshTarget.from_node(node, base_dir)
        with self._lock:
            session = self._sessions.get(target.name)
            if session is not None and session.target == target:
                return session
        known_hosts = Path(target.known_hosts).expanduser() if target.known_hosts else self.default_known_hosts
        endpoint = resolve_endpoint(
            target.ssh_host, self.config, port=target.ssh_port, user=target.ssh_user, key=target.ssh_key
        )
        via = self._jump_chain(endpoint.proxy_jump, known_hosts, target) if endpoint.proxy_jump else None
        session = HostSession(self, target, endpoint, known_hosts, via=via)
        with self._lock:
            old = self._sessions.get(target.name)
            if old is not None and old.target == target:
                return old
            self._sessions[target.name] = session
        if old is not None:
            old.close()
        return session

    def _jump_chain(self, proxy_jump: str, known_hosts: Path, target: SshTarget) -> HostSession:
        """The session of the last hop of `ProxyJump a,b,c`, each hop tunnelled through the previous."""
        via: HostSession | None = None
        for hop in proxy_jump.split(","):
            key = (hop.strip(), str(known_hosts))
            with self._lock:
                existing = self._jumps.get(key)
            if existing is not None:
                via = existing
                continue
            user, host, port = parse_jump(hop)
            endpoint = resolve_endpoint(host, self.config, port=port, user=user)
            if endpoint.proxy_jump and via is None and hop.strip() not in endpoint.proxy_jump:
                via = self._jump_chain(endpoint.proxy_jump, known_hosts, target)
            if not endpoint.key_files and target.ssh_key:
                # A bastion usually takes the same operator key as the nodes behind it.
                endpoint = Endpoint(**{**endpoint.__dict__, "key_files": (target.ssh_key,)})
            jump_target = SshTarget(name=f"jump host {host}", ssh_host=host)
            session = HostSession(self, jump_target, endpoint, known_hosts, via=via)
            with self._lock:
                via = self._jumps.setdefault(key, session)
        assert via is not None
        return via

    def close(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            jumps = list(self._jumps.values())
            self._sessions.clear()
            self._jumps.clear()
            agent, self._agent = self._agent, None
        for session in sessions + jumps[::-1]:
            session.close()
        if agent is not None:
            with contextlib.suppress(Exception):
                agent.close()
