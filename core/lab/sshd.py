"""One real OpenSSH server on a loopback address, for the lab.

    server = SshServer(workdir, "127.4.5.1", 2222, authorized_keys, name="n1")
    server.start()                      # generates its ed25519 host key on first start
    server.host_key_line()              # "[127.4.5.1]:2222 ssh-ed25519 AAAA..." for known_hosts
    server.host_key_fingerprint         # "SHA256:..." as `ssh-keygen -lf` prints it
    server.stop()                       # by pid: SIGTERM, then SIGKILL; idempotent
    server.start()                      # same config, same host key: the host "comes back"

Everything lives in `workdir` (0755): `sshd_config`, `ssh_host_ed25519_key[.pub]`,
`sshd.pid`, `sshd.log`. sshd runs in the foreground (`-D -e`) under our `Popen`, so its
pid is the listener's own pid; stopping also ends the per-connection children, which
sshd puts in sessions of their own, so a stopped server really is a down host.

Logins use public keys from `authorized_keys` only (`AuthorizedKeysFile` points at it,
`StrictModes no`, no passwords). As root any account can log in; as a normal user sshd
can only log that same user in. OpenSSH refuses accounts whose password is locked
(`!` in /etc/shadow, e.g. Debian's `postgres`) when PAM is off, so for such an account
the server is started with `UsePAM yes`, which checks the account through PAM instead.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from functools import lru_cache
from pathlib import Path

from core.errors import CertRotateError
from core.lab.procs import (
    LabServer,
    is_root,
    log_tail,
    read_pid_file,
    run_checked,
    stop_pid,
    track_running,
    untrack_running,
)

SSHD_CANDIDATES = ("/usr/sbin/sshd", "/usr/local/sbin/sshd", "/sbin/sshd")
SSH_KEYGEN = "ssh-keygen"
PRIVSEP_DIR = Path("/run/sshd")
DEFAULT_SSH_PORT = 2222


def find_sshd() -> str:
    for candidate in SSHD_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("sshd")
    if found:
        return found
    raise CertRotateError("The lab needs OpenSSH's sshd, which is not installed; install the openssh-server package.")


@lru_cache(maxsize=1)
def sshd_version() -> tuple[int, int]:
    """(major, minor) of the installed OpenSSH, (0, 0) when it cannot be told."""
    try:
        result = subprocess.run([find_sshd(), "-V"], capture_output=True, text=True, timeout=10)
        match = re.search(r"OpenSSH_(\d+)\.(\d+)", result.stderr + result.stdout)
    except (OSError, subprocess.SubprocessError, CertRotateError):
        return (0, 0)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def account_password_locked(user: str) -> bool:
    """True when /etc/shadow marks `user`'s password as locked (only root can tell)."""
    try:
        for line in Path("/etc/shadow").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == user and len(fields) > 1:
                return fields[1].startswith("!")
    except OSError:
        return False
    return False


def generate_ed25519_key(path: Path, comment: str) -> None:
    """An ed25519 key pair from ssh-keygen (private 0600, `.pub` next to it)."""
    path = Path(path)
    if path.exists():
        return
    run_checked(
        [SSH_KEYGEN, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        f"Generating the SSH key {path}",
        stdin=subprocess.DEVNULL,
    )
    os.chmod(path, 0o600)
    os.chmod(path.with_name(path.name + ".pub"), 0o644)


def public_key_fingerprint(public_line: str) -> str:
    """SHA256:<base64 without padding> of an OpenSSH public key line, as `ssh-keygen -lf` prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_host(address: str, port: int) -> str:
    """The host field OpenSSH and paramiko write: bare for port 22, `[host]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


class SshServer(LabServer):
    """A real sshd bound to `address:port`, with its own config, host key and pid file in `workdir`."""

    what = "sshd"

    def __init__(
        self,
        workdir: Path,
        address: str,
        port: int = DEFAULT_SSH_PORT,
        authorized_keys: Path | None = None,
        *,
        name: str | None = None,
        login_user: str | None = None,
        start_timeout: float = 15.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.address = address
        self.port = port
        self.authorized_keys = Path(authorized_keys) if authorized_keys else self.workdir / "authorized_keys"
        self.name = name or address
        self.login_user = login_user
        self.start_timeout = start_timeout
        self.config_path = self.workdir / "sshd_config"
        self.host_key_path = self.workdir / "ssh_host_ed25519_key"
        self.pid_path = self.workdir / "sshd.pid"
        self.log_path = self.workdir / "sshd.log"
        self._process: subprocess.Popen | None = None
        # Set before start(): variables every session gets (SetEnv), e.g. a PATH without openssl and psql,
        # for a host that lacks them.
        self.session_env: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"SshServer({self.name} on {self.address}:{self.port}, pid={self.pid})"

    # -- identity -------------------------------------------------------------------------

    def prepare(self) -> None:
        """Create the workdir, the host key and sshd_config (idempotent; start() calls it)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.workdir, 0o755)
        generate_ed25519_key(self.host_key_path, f"certrotate-lab-host-{self.name}")
        self.config_path.write_text(self._config_text())
        if is_root() and not PRIVSEP_DIR.is_dir():
            # sshd as root refuses to start without its privilege-separation directory,
            # which Debian creates only when the ssh service runs.
            PRIVSEP_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)

    def _config_text(self) -> str:
        use_pam = bool(self.login_user and is_root() and account_password_locked(self.login_user))
        lines = [
            f"# certrotate lab sshd for {self.name}",
            f"ListenAddress {self.address}:{self.port}",
            f"HostKey {self.host_key_path}",
            f"PidFile {self.pid_path}",
            f"AuthorizedKeysFile {self.authorized_keys}",
            "StrictModes no",
            f"UsePAM {'yes' if use_pam else 'no'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            # Many tests open connections at once; the default 10:30:100 drops some.
            "MaxStartups 200:30:400",
            "MaxSessions 100",
            "LoginGraceTime 30",
            "LogLevel VERBOSE",
            # The path of sftp-server differs between distributions; the built-in one does not.
            "Subsystem sftp internal-sftp",
        ]
        if self.session_env:
            lines.append("SetEnv " + " ".join(f"{name}={value}" for name, value in self.session_env.items()))
        if sshd_version() >= (9, 8):
            # Tests that try a wrong key on purpose would otherwise get 127.0.0.1 penalised.
            lines.append("PerSourcePenalties no")
        return "\n".join(lines) + "\n"

    def host_public_key(self) -> str:
        """The host key as "ssh-ed25519 AAAA..." (no comment)."""
        if not self.host_key_path.exists():
            self.prepare()
        key_type, blob = self.host_key_path.with_name(self.host_key_path.name + ".pub").read_text().split()[:2]
        return f"{key_type} {blob}"

    def host_key_line(self) -> str:
        """One known_hosts line for this server: `[address]:port ssh-ed25519 AAAA...`."""
        return f"{known_hosts_host(self.address, self.port)} {self.host_public_key()}"

    @property
    def host_key_fingerprint(self) -> str:
        return public_key_fingerprint(self.host_public_key())

    # -- process --------------------------------------------------------------------------

    def start(self) -> None:
        """Start sshd and return once it listens and answers with its SSH banner; a no-op while it runs."""
        if self.running:
            return
        self.prepare()
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()  # a stale one from a killed run would look like success
        track_running(self)
        with open(self.log_path, "ab") as log:
            self._process = subprocess.Popen(
                [find_sshd(), "-D", "-e", "-f", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                start_new_session=True,
            )
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self._process.poll() is not None:
                self._process = None
                untrack_running(self)
                raise CertRotateError(
                    f"sshd for {self.name} on {self.address}:{self.port} did not start: {log_tail(self.log_path)}"
                )
            # sshd writes its pid file only once it listens: a banner alone could come from
            # another server holding the port while ours is about to give up and exit.
            if read_pid_file(self.pid_path) == self._process.pid and self._answers_banner():
                return
            if time.monotonic() >= deadline:
                self.stop()
                raise CertRotateError(
                    f"sshd for {self.name} on {self.address}:{self.port} did not answer within "
                    f"{self.start_timeout:.0f} s: {log_tail(self.log_path)}"
                )
            time.sleep(0.02)

    def _answers_banner(self) -> bool:
        try:
            with socket.create_connection((self.address, self.port), timeout=1.0) as conn:
                return conn.recv(8).startswith(b"SSH-")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the listener and every connection it serves, by pid. Idempotent."""
        pid = self.pid
        stop_pid(pid, process=self._process, with_descendants=True)
        self._process = None
        untrack_running(self)
        if pid is not None:
            with contextlib.suppress(FileNotFoundError):
                self.pid_path.unlink()
