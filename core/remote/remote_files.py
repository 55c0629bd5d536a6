"""Files on the nodes: read, hash, and replace them atomically, with backups that restore exactly.

A replacement never leaves a node with a half-written certificate or key:

1. the new content goes to an exclusive temporary file in the target's own directory,
   named `.certrotate-<random>.tmp` (CockroachDB only loads `ca*`, `node*`, `client*`,
   `ui*` names ending in .crt/.key, and skips directories, so it never sees our temps
   or the `.certrotate-backup` directory), created with the final mode before the first
   byte is written and given the replaced file's owner and group;
2. the temp is read back and its sha256 compared with what we sent — a full disk or a
   truncating server shows up here, before anything is renamed;
3. only then is it renamed over the target (POSIX rename: readers see the old file or
   the new one, never a mix), and the directory is synced.

On any failure the temps are removed and the targets are byte-identical to before.

With a `rotation_id`, every file is first copied on the node to
`<certs_dir>/.certrotate-backup/<rotation_id>/` (0700), and a manifest there records the
original's sha256, mode and owner — or that it did not exist. A backup is taken once per
rotation and never overwritten, so re-running a step keeps the ORIGINAL. `restore()`
puts every original back with the same atomic replacement and removes the files the
rotation added, leaving the host byte-identical to before the rotation.

File content is never logged or put into an exception: it may be a private key.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import posixpath
import re
import secrets
import shlex
import stat as stat_module
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import paramiko
from paramiko.sftp import (
    CMD_EXTENDED,
    CMD_FSETSTAT,
    CMD_HANDLE,
    CMD_OPEN,
    SFTP_FLAG_CREATE,
    SFTP_FLAG_EXCL,
    SFTP_FLAG_READ,
    SFTP_FLAG_WRITE,
)

from core.crashpoints import crash_point
from core.errors import BadInput, StepFailed
from core.remote.ssh import HostSession, HostTimeout, check_remote_path, one_line

TEMP_PREFIX = ".certrotate-"
TEMP_SUFFIX = ".tmp"
BACKUP_DIR_NAME = ".certrotate-backup"
MANIFEST_NAME = "manifest.json"
CHUNK = 32768
log = logging.getLogger("certrotate.ssh")
_ROTATION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class RemoteStat:
    path: str
    mode: int  # permission bits only, e.g. 0o600
    uid: int
    gid: int
    size: int
    mtime: int
    kind: str  # "file", "dir", "symlink" or "other"

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)

    @property
    def is_file(self) -> bool:
        return self.kind == "file"

    @property
    def is_dir(self) -> bool:
        return self.kind == "dir"


@dataclass(frozen=True)
class RemoteFile:
    """A file to put on a node. `mode`/`uid`/`gid` None: keep the replaced file's (new files: see upload)."""

    path: str
    content: bytes = field(repr=False)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class Uploaded:
    host: str
    path: str
    sha256: str
    size: int
    mode: int
    uid: int
    gid: int
    changed: bool  # False: the file already had exactly this content, mode and owner


@dataclass(frozen=True)
class BackupEntry:
    path: str
    existed: bool
    backup: str | None = None  # file name inside the rotation's backup directory
    sha256: str | None = None
    size: int | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


@dataclass(frozen=True)
class BackupManifest:
    rotation_id: str
    host: str
    directory: str
    entries: dict[str, BackupEntry]

    def to_json(self) -> bytes:
        document = {
            "rotation_id": self.rotation_id,
            "host": self.host,
            "files": {path: entry.__dict__ for path, entry in sorted(self.entries.items())},
        }
        return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, directory: str) -> BackupManifest:
        document = json.loads(data)
        entries = {path: BackupEntry(**values) for path, values in document.get("files", {}).items()}
        return cls(document["rotation_id"], document.get("host", ""), directory, entries)


@dataclass(frozen=True)
class Restored:
    host: str
    restored: list[str]
    removed: list[str]
    unchanged: list[str]

    def summary(self) -> str:
        """What the restore put back, by file name, for the journal (e.g. "previous node.crt, node.key back in place")."""
        back = sorted(posixpath.basename(path) for path in self.restored + self.unchanged)
        gone = sorted(posixpath.basename(path) for path in self.removed)
        parts = [f"previous {', '.join(back)} back in place"] if back else []
        if gone:
            parts.append(f"new {', '.join(gone)} removed")
        return "; ".join(parts) or "nothing to put back"


# -- helpers ------------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat_module.S_ISREG(mode):
        return "file"
    if stat_module.S_ISDIR(mode):
        return "dir"
    if stat_module.S_ISLNK(mode):
        return "symlink"
    return "other"


def _remote_stat(path: str, attrs: paramiko.SFTPAttributes) -> RemoteStat:
    mode = attrs.st_mode or 0
    return RemoteStat(
        path=path,
        mode=stat_module.S_IMODE(mode),
        uid=attrs.st_uid if attrs.st_uid is not None else -1,
        gid=attrs.st_gid if attrs.st_gid is not None else -1,
        size=attrs.st_size or 0,
        mtime=attrs.st_mtime or 0,
        kind=_kind(mode),
    )


def _failure(session: HostSession, exc: OSError, doing: str, path: str) -> Exception:
    """An SFTP error as one sentence; a broken connection is passed on for the step to report."""
    transport = session._transport
    if transport is None or not transport.is_active():
        return exc
    user = session.endpoint.user
    if exc.errno in (errno.EACCES, errno.EPERM):
        return StepFailed(
            f"{session.label}: permission denied {doing} {path} as {user}; log in as root or as the "
            f"owner of {posixpath.dirname(path) or '/'} (ssh_user), or fix its permissions."
        )
    if exc.errno == errno.ENOENT:
        return StepFailed(f"{session.label}: {path} does not exist (while {doing} it); check certs_dir and the file name.")
    reason = _reason(exc)
    return StepFailed(f"{session.label}: {doing} {path} failed ({reason}); check the disk and permissions on {session.name}.")


def _reason(exc: OSError) -> str:
    return one_line(exc.strerror or (str(exc.args[0]) if exc.args else "") or type(exc).__name__, 120)


def _lstat(session: HostSession, sftp: paramiko.SFTPClient, path: str) -> RemoteStat | None:
    try:
        return _remote_stat(path, sftp.lstat(path))
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise _failure(session, exc, "reading the attributes of", path) from None


def _read(session: HostSession, sftp: paramiko.SFTPClient, path: str) -> bytes:
    try:
        with sftp.open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise _failure(session, exc, "reading", path) from None


def _check_path(path: str) -> str:
    check_remote_path(path, "remote path")
    if path.endswith("/") or posixpath.basename(path) in ("", ".", ".."):
        raise BadInput(f"The remote path {path!r} names a directory; give the file's full path.")
    return path


def _check_rotation_id(rotation_id: str) -> str:
    if not isinstance(rotation_id, str) or not _ROTATION_ID.fullmatch(rotation_id):
        raise BadInput(
            f"Rotation id {rotation_id!r} cannot name a backup directory; use letters, digits, '.', '_' and '-'."
        )
    return rotation_id


def _certs_dir(session: HostSession) -> str:
    if not session.target.certs_dir:
        raise BadInput(f"Node {session.name} has no certs_dir; set it in its [[nodes]] entry.")
    return session.target.certs_dir.rstrip("/") or "/"


def default_mode(path: str) -> int:
    """Mode for a file that did not exist: 0600 for keys (cockroach refuses wider ones), 0644 otherwise."""
    return 0o600 if path.lower().endswith((".key", ".pk8")) else 0o644


def commit_order(paths: Iterable[str]) -> list[str]:
    """Keys before certificates, so that a node.crt on disk always has its node.key beside it.

    Both daemons read the pair only on SIGHUP or restart, so the danger is the instant
    between the two renames (or a crash inside it). Whichever order we pick, a mismatched
    pair exists in that instant; with the key first, `node.crt` is the commit point: a
    new certificate on disk implies the new key is already there, so anything that looks
    at the certificate — our verify step, a resumed run comparing its sha256 — sees a
    complete new pair or the old one, and a mismatch can only be "new key, old cert",
    which the rollback (or a re-run) repairs.
    """
    paths = list(paths)
    return [p for p in paths if not p.endswith(".crt")] + [p for p in paths if p.endswith(".crt")]


# -- reading ------------------------------------------------------------------------------


def read_file(session: HostSession, path: str, *, timeout: float | None = None) -> bytes:
    """The bytes of a remote file; a missing file is a StepFailed naming host and path."""
    _check_path(path)
    with session.step(f"reading {path}", timeout):
        return _read(session, session.sftp(), path)


def file_sha256(session: HostSession, path: str, *, timeout: float | None = None) -> str | None:
    """Hex sha256 of a remote file, or None if it does not exist."""
    _check_path(path)
    with session.step(f"hashing {path}", timeout):
        sftp = session.sftp()
        try:
            with sftp.open(path, "rb") as handle:
                return hashlib.sha256(handle.read()).hexdigest()
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
                return None  # one open tells both whether it exists and what it holds
            raise _failure(session, exc, "reading", path) from None


def stat(session: HostSession, path: str, *, timeout: float | None = None) -> RemoteStat | None:
    """Mode, owner, size and kind of a remote path (not following a final symlink); None if absent."""
    check_remote_path(path, "remote path")
    with session.step(f"reading the attributes of {path}", timeout):
        return _lstat(session, session.sftp(), path)


def list_dir(session: HostSession, path: str, *, timeout: float | None = None) -> list[RemoteStat]:
    """The entries of a remote directory, sorted by name."""
    check_remote_path(path, "remote directory")
    with session.step(f"listing {path}", timeout):
        try:
            entries = session.sftp().listdir_attr(path)
        except OSError as exc:
            raise _failure(session, exc, "listing", path) from None
    base = path.rstrip("/") or "/"
    return sorted((_remote_stat(posixpath.join(base, a.filename), a) for a in entries), key=lambda s: s.name)


# -- writing ------------------------------------------------------------------------------


@dataclass
class _Replacement:
    path: str
    content: bytes = field(repr=False)
    mode: int
    owner: tuple[int, int] | None  # None: whatever the login user gets
    owner_required: bool  # the old owner could not read the file if we gave it another
    old: RemoteStat | None
    temp: str | None = None
    rollback_temp: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def _temp_name(directory: str) -> str:
    return posixpath.join(directory, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")


def _open_exclusive(sftp: paramiko.SFTPClient, path: str, mode: int) -> paramiko.SFTPFile:
    """SFTP open with O_CREAT|O_EXCL and the mode in the request, so no byte is ever wider-readable.

    Opened for reading too, so the read-back check goes through the same handle: no second
    open and close per file (each is a round trip to the host)."""
    attrs = paramiko.SFTPAttributes()
    attrs.st_mode = mode
    flags = SFTP_FLAG_READ | SFTP_FLAG_WRITE | SFTP_FLAG_CREATE | SFTP_FLAG_EXCL
    kind, message = sftp._request(CMD_OPEN, path, flags, attrs)
    if kind != CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    return paramiko.SFTPFile(sftp, message.get_binary(), "r+b", bufsize=0)


def _set_mode_and_owner(session: HostSession, handle: paramiko.SFTPFile, target: str, mode: int,
                        owner: tuple[int, int] | None, owner_required: bool) -> None:
    """Mode and owner in one request (sftp-server applies the mode, then the owner); apart only when
    the owner cannot be given, to tell whether that matters."""
    if owner is not None and min(owner) >= 0:
        attrs = paramiko.SFTPAttributes()
        attrs.st_mode = mode
        attrs.st_uid, attrs.st_gid = owner
        try:
            handle.sftp._request(CMD_FSETSTAT, handle.handle, attrs)
            if mode & 0o6000:
                handle.chmod(mode)  # chown clears set-id bits on some systems
            return
        except OSError:
            pass
    handle.chmod(mode)  # the server's umask may have narrowed the mode given at open
    if owner is None:
        return
    attrs = handle.stat()
    if (attrs.st_uid, attrs.st_gid) != owner and owner_required:
        raise StepFailed(
            f"{session.label}: as {session.endpoint.user} certrotate cannot give the new "
            f"{target} its owner (uid {owner[0]}, gid {owner[1]}), who could not read it with "
            f"mode {mode:04o}, so it was left unchanged; log in as root (ssh_user) to replace it."
        )


def _write_temp(
    session: HostSession,
    sftp: paramiko.SFTPClient,
    target: str,
    content: bytes,
    mode: int,
    owner: tuple[int, int] | None,
    owner_required: bool,
    created: list[str],
) -> str:
    """Write `content` to a new temp beside `target` and prove it arrived intact; return its path."""
    directory = posixpath.dirname(target) or "/"
    temp = _temp_name(directory)
    try:
        handle = _open_exclusive(sftp, temp, mode)
    except OSError as exc:
        failure = _failure(session, exc, "creating a temporary file for", target)
        if isinstance(failure, StepFailed) and exc.errno in (errno.EACCES, errno.EPERM):
            raise StepFailed(
                f"{session.label}: permission denied creating a file in {directory} as {session.endpoint.user}, "
                f"so {target} was left unchanged; log in as root or as the owner of {directory} (ssh_user), "
                f"or fix its permissions."
            ) from None
        if isinstance(failure, StepFailed):
            raise StepFailed(
                f"{session.label}: cannot create a file in {directory} ({_reason(exc)}), so {target} was left "
                f"unchanged; check that certs_dir is the right, writable directory."
            ) from None
        raise failure from None
    created.append(temp)
    written = 0
    try:
        with handle:
            _set_mode_and_owner(session, handle, target, mode, owner, owner_required)
            for start in range(0, len(content), CHUNK):
                handle.write(content[start : start + CHUNK])
                written = start + len(content[start : start + CHUNK])
            try:
                sftp._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
            except (OSError, paramiko.SSHException):
                pass  # servers without the extension: the directory sync below is our best
            # Read back what the host holds (the temp is new, so it cannot hold more than we sent).
            handle.seek(0)
            try:
                back = handle.read(len(content)) if content else b""
            except OSError as exc:
                raise _failure(session, exc, "reading back", temp) from None
    except StepFailed:
        raise
    except OSError as exc:
        failure = _failure(session, exc, "writing", target)
        if isinstance(failure, StepFailed):
            raise StepFailed(
                f"{session.label}: writing {target} stopped after {written} of {len(content)} bytes "
                f"({_reason(exc)}) and {target} was left unchanged; check whether the disk on {session.name} "
                f"is full (df -h {directory})."
            ) from None
        raise failure from None
    if hashlib.sha256(back).digest() != hashlib.sha256(content).digest():
        raise StepFailed(
            f"{session.label}: {target} did not arrive intact (read back {len(back)} of {len(content)} bytes, "
            f"sha256 differs) and was left unchanged; check whether the disk on {session.name} is full "
            f"(df -h {directory})."
        )
    return temp


def _remove_quietly(sftp: paramiko.SFTPClient, path: str | None) -> None:
    if path is None:
        return
    try:
        sftp.remove(path)
    except (OSError, paramiko.SSHException, EOFError):
        pass


def _fsync_dir_over_sftp(sftp: paramiko.SFTPClient, directory: str) -> bool:
    """fsync a directory through OpenSSH's fsync@openssh.com extension: no remote shell needed.

    A command over SSH starts the login shell, which on many hosts sources a heavy rc file
    for every command; the SFTP channel is already open. sftp-server opens the directory
    read-only (which Linux allows) and fsyncs that descriptor.
    """
    try:
        with sftp.open(directory, "r") as handle:
            sftp._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
        return True
    except (OSError, paramiko.SSHException, EOFError):
        return False


def _sync_dirs(session: HostSession, directories: Iterable[str]) -> None:
    """Make the renames durable: over SFTP where the server allows, else `sync -f` (coreutils ≥ 8.24) or `sync`."""
    directories = sorted(set(directories))
    if not directories:
        return
    sftp = session.sftp()
    directories = [d for d in directories if not _fsync_dir_over_sftp(sftp, d)]
    if not directories:
        return
    command = "; ".join(f"sync -f {shlex.quote(d)} 2>/dev/null || sync" for d in directories)
    try:
        session.run(command)
    except HostTimeout:
        raise
    except StepFailed:
        pass  # e.g. an SFTP-only account cannot run commands; the data was fsynced already


def _plan(
    session: HostSession,
    sftp: paramiko.SFTPClient,
    file: RemoteFile,
    seen: dict[str, RemoteStat | None] | None = None,
) -> _Replacement:
    """How to replace one file; `seen` holds lstat results the backup took moments before in the
    same host step, so they are not asked for again."""
    path = _check_path(file.path)
    old = seen[path] if seen and path in seen else _lstat(session, sftp, path)
    if old is not None and not old.is_file:
        raise StepFailed(
            f"{session.label}: {path} is a {old.kind}, not a regular file; certrotate replaces files by "
            f"renaming and would break it — point the node's certs_dir at the real directory."
        )
    if old is not None:
        mode = file.mode if file.mode is not None else old.mode
        owner = (
            file.uid if file.uid is not None else old.uid,
            file.gid if file.gid is not None else old.gid,
        )
        owner_required = not (mode & 0o004) or file.uid is not None
    else:
        mode = file.mode if file.mode is not None else default_mode(path)
        directory = _lstat(session, sftp, posixpath.dirname(path) or "/")
        if directory is None or not directory.is_dir:
            raise StepFailed(
                f"{session.label}: the directory {posixpath.dirname(path)} does not exist; create it or fix certs_dir."
            )
        # A new file belongs to the directory's owner (the database user), not to whoever logged in.
        owner = (
            file.uid if file.uid is not None else directory.uid,
            file.gid if file.gid is not None else directory.gid,
        )
        owner_required = file.uid is not None
    return _Replacement(path, file.content, mode, owner, owner_required, old)


def _unchanged(session: HostSession, sftp: paramiko.SFTPClient, item: _Replacement) -> bool:
    old = item.old
    if old is None or old.mode != item.mode or old.size != len(item.content):
        return False
    if item.owner is not None and (old.uid, old.gid) != item.owner:
        return False
    return hashlib.sha256(_read(session, sftp, item.path)).digest() == hashlib.sha256(item.content).digest()


def _replace(session: HostSession, items: Sequence[_Replacement],
             check_node_clock: Callable[[float | None], None] | None = None) -> list[Uploaded]:
    """Write and verify every temp, then rename them in order; undo earlier renames if a later one fails."""
    sftp = session.sftp()
    pending = [item for item in items if not _unchanged(session, sftp, item)]
    created: list[str] = []
    renamed: list[_Replacement] = []
    try:
        for item in pending:
            item.temp = _write_temp(
                session, sftp, item.path, item.content, item.mode, item.owner, item.owner_required, created
            )
        if check_node_clock is not None and pending:
            check_node_clock(_node_time(session, sftp, pending[-1].temp or ""))
        if len(pending) > 1:
            # Prepared before the first rename, so undoing one needs no write (the disk may be full).
            for item in pending:
                if item.old is not None:
                    item.rollback_temp = _write_temp(
                        session,
                        sftp,
                        item.path,
                        _read(session, sftp, item.path),
                        item.old.mode,
                        (item.old.uid, item.old.gid),
                        False,
                        created,
                    )
        crash_point("upload", "before")  # tests: killed with every temp written and nothing renamed
        for item in pending:
            try:
                sftp.posix_rename(item.temp, item.path)
            except OSError as exc:
                failure = _failure(session, exc, "renaming the new file over", item.path)
                undone = _roll_back(sftp, renamed)
                if isinstance(failure, StepFailed):
                    tail = (
                        "the files renamed before it were put back"
                        if undone
                        else "putting back the files renamed before it FAILED — run `certrotate rollback`"
                    )
                    raise StepFailed(f"{failure} ({tail if renamed else 'nothing was changed'})") from None
                raise failure from None
            created.remove(item.temp)
            item.temp = None
            renamed.append(item)
    finally:
        for temp in created:
            _remove_quietly(sftp, temp)
    _sync_dirs(session, (posixpath.dirname(item.path) for item in pending))
    for item in pending:
        log.info("%s: replaced %s (%d bytes, sha256 %s, mode %04o)", session.name, item.path, len(item.content), item.sha256, item.mode)
    results = []
    for item in items:
        owner = item.owner or ((item.old.uid, item.old.gid) if item.old else None)
        results.append(
            Uploaded(
                host=session.name,
                path=item.path,
                sha256=item.sha256,
                size=len(item.content),
                mode=item.mode,
                uid=owner[0] if owner else -1,
                gid=owner[1] if owner else -1,
                changed=item in pending,
            )
        )
    return results


def _node_time(session: HostSession, sftp: paramiko.SFTPClient, temp: str) -> float | None:
    """The node's clock, as its kernel stamped the temp just written (seconds; None from a server
    that gives no times): read over the SFTP channel already open, where `date` would cost a
    command and the node a login shell. On a certs_dir mounted over NFS it is the file server's clock."""
    try:
        mtime = sftp.stat(temp).st_mtime
    except OSError as exc:
        raise _failure(session, exc, "reading the time of", temp) from None
    return None if mtime is None else float(mtime)


def _roll_back(sftp: paramiko.SFTPClient, renamed: list[_Replacement]) -> bool:
    ok = True
    for item in reversed(renamed):
        try:
            if item.rollback_temp is not None:
                sftp.posix_rename(item.rollback_temp, item.path)
                item.rollback_temp = None
            else:
                sftp.remove(item.path)
        except (OSError, paramiko.SSHException, EOFError):
            ok = False
    return ok


def upload(
    session: HostSession,
    path: str,
    content: bytes,
    *,
    mode: int | None = None,
    rotation_id: str | None = None,
    timeout: float | None = None,
) -> Uploaded:
    """Replace (or create) one remote file atomically; see the module docstring."""
    return upload_files(session, [RemoteFile(path, content, mode)], rotation_id=rotation_id, timeout=timeout)[0]


def upload_files(
    session: HostSession,
    files: Sequence[RemoteFile],
    *,
    rotation_id: str | None = None,
    timeout: float | None = None,
    check_node_clock: Callable[[float | None], None] | None = None,
) -> list[Uploaded]:
    """Replace several files as one change, renamed in the given order (use `commit_order`).

    Every temp is written and verified before the first rename; if a rename fails, the
    files already renamed are put back. With `rotation_id`, originals are backed up first.
    `check_node_clock` gets the node's time once the temps are written; if it raises, no
    file is renamed (and nothing is written when every file is already in place).
    """
    paths = [_check_path(file.path) for file in files]
    if len(set(paths)) != len(paths):
        raise BadInput(f"The same remote path appears twice in one upload to {session.name}.")
    what = "uploading " + ", ".join(paths)
    with session.step(what, timeout):
        seen: dict[str, RemoteStat | None] = {}
        if rotation_id is not None:
            _backup(session, paths, rotation_id, seen)
        sftp = session.sftp()
        items = [_plan(session, sftp, file, seen) for file in files]
        return _replace(session, items, check_node_clock)


def upload_pair(
    session: HostSession,
    cert: RemoteFile,
    key: RemoteFile,
    *,
    rotation_id: str | None = None,
    timeout: float | None = None,
) -> list[Uploaded]:
    """Replace a certificate and its key together: key first, then certificate (see `commit_order`)."""
    return upload_files(session, [key, cert], rotation_id=rotation_id, timeout=timeout)


def remove_stale_temps(session: HostSession, directory: str, *, timeout: float | None = None) -> list[str]:
    """Remove `.certrotate-*.tmp` files a killed run left in `directory`; return their paths.

    Only call it while holding the state file's lock: another run's temps are not stale.
    """
    removed = []
    for entry in list_dir(session, directory, timeout=timeout):
        if entry.is_file and entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX):
            with session.step(f"removing {entry.path}", timeout):
                _remove_quietly(session.sftp(), entry.path)
            removed.append(entry.path)
    return removed


# -- backups ------------------------------------------------------------------------------


def backup_dir(certs_dir: str, rotation_id: str) -> str:
    return posixpath.join(certs_dir, BACKUP_DIR_NAME, _check_rotation_id(rotation_id))


def _backup_name(certs_dir: str, path: str) -> str:
    name = posixpath.basename(path)
    if posixpath.dirname(path) == certs_dir and name != MANIFEST_NAME and not name.startswith(TEMP_PREFIX):
        return name
    return urllib.parse.quote(path, safe="")  # a file outside certs_dir: its whole path, escaped


def _ensure_private_dir(session: HostSession, sftp: paramiko.SFTPClient, path: str) -> None:
    existing = _lstat(session, sftp, path)
    if existing is not None:
        if not existing.is_dir:
            raise StepFailed(f"{session.label}: {path} exists and is not a directory; move it away so backups can be kept.")
        return
    try:
        sftp.mkdir(path, 0o700)
        sftp.chmod(path, 0o700)
    except OSError as exc:
        if _lstat(session, sftp, path) is None:
            raise _failure(session, exc, "creating the backup directory", path) from None


def _ensure_backup_dir(session: HostSession, sftp: paramiko.SFTPClient, certs_dir: str, directory: str) -> bool:
    """Make the rotation step's backup directory (0700) if needed; True when made just now, so
    that it holds nothing yet. Made at the first try whenever `.certrotate-backup` is there."""
    try:
        sftp.mkdir(directory, 0o700)
    except OSError:
        _ensure_private_dir(session, sftp, posixpath.join(certs_dir, BACKUP_DIR_NAME))
        try:
            sftp.mkdir(directory, 0o700)
        except OSError as exc:
            existing = _lstat(session, sftp, directory)
            if existing is None:
                raise _failure(session, exc, "creating the backup directory", directory) from None
            if not existing.is_dir:
                raise StepFailed(f"{session.label}: {directory} exists and is not a directory; move it away so "
                                 "backups can be kept.") from None
            return False
    try:
        sftp.chmod(directory, 0o700)
    except OSError as exc:
        raise _failure(session, exc, "creating the backup directory", directory) from None
    return True


def read_manifest(session: HostSession, rotation_id: str, *, timeout: float | None = None) -> BackupManifest | None:
    """The backup manifest of a rotation on this node, or None if nothing was backed up."""
    directory = backup_dir(_certs_dir(session), rotation_id)
    with session.step(f"reading the backup manifest in {directory}", timeout):
        return _read_manifest(session, session.sftp(), directory)


def _read_manifest(session: HostSession, sftp: paramiko.SFTPClient, directory: str) -> BackupManifest | None:
    path = posixpath.join(directory, MANIFEST_NAME)
    if _lstat(session, sftp, path) is None:
        return None
    try:
        return BackupManifest.from_json(_read(session, sftp, path), directory)
    except (ValueError, KeyError, TypeError):
        raise StepFailed(
            f"{session.label}: the backup manifest {path} is damaged; compare the files in {directory} by hand."
        ) from None


def _write_manifest(session: HostSession, sftp: paramiko.SFTPClient, manifest: BackupManifest) -> None:
    path = posixpath.join(manifest.directory, MANIFEST_NAME)
    item = _Replacement(path, manifest.to_json(), 0o600, None, False, None)  # renamed over whatever is there
    _replace_without_sync(session, sftp, item)


def _replace_without_sync(session: HostSession, sftp: paramiko.SFTPClient, item: _Replacement) -> None:
    created: list[str] = []
    try:
        temp = _write_temp(session, sftp, item.path, item.content, item.mode, item.owner, False, created)
        try:
            sftp.posix_rename(temp, item.path)
        except OSError as exc:
            raise _failure(session, exc, "renaming the new file over", item.path) from None
        created.remove(temp)
    finally:
        for temp in created:
            _remove_quietly(sftp, temp)


def backup_files(
    session: HostSession, paths: Sequence[str], rotation_id: str, *, timeout: float | None = None
) -> BackupManifest:
    """Copy each file's current version into the rotation's backup directory, once per rotation.

    Files that do not exist are recorded as such, so `restore` removes them. A file already
    in the manifest is left alone: a re-run must keep the version from before the rotation.
    """
    return _backup(session, paths, rotation_id, {}, timeout=timeout)


def _backup(session: HostSession, paths: Sequence[str], rotation_id: str, seen: dict[str, RemoteStat | None], *,
            timeout: float | None = None) -> BackupManifest:
    """backup_files, noting in `seen` what each path's lstat said (the upload plans from it)."""
    certs_dir = _certs_dir(session)
    directory = backup_dir(certs_dir, rotation_id)
    with session.step(f"backing up files into {directory}", timeout), session.files_lock:
        sftp = session.sftp()
        fresh = _ensure_backup_dir(session, sftp, certs_dir, directory)
        manifest = (None if fresh else _read_manifest(session, sftp, directory)) or BackupManifest(
            rotation_id, session.name, directory, {})
        added: dict[str, BackupEntry] = {}
        for path in paths:
            _check_path(path)
            if path in manifest.entries:
                continue
            current = seen[path] = _lstat(session, sftp, path)
            if current is None:
                entry = BackupEntry(path, existed=False)
            elif not current.is_file:
                raise StepFailed(
                    f"{session.label}: {path} is a {current.kind}, not a regular file; certrotate cannot back it up "
                    f"— point the node's certs_dir at the real directory."
                )
            else:
                name = _backup_name(certs_dir, path)
                backup_path = posixpath.join(directory, name)
                if fresh or _lstat(session, sftp, backup_path) is None:
                    content = _read(session, sftp, path)
                    created: list[str] = []
                    try:
                        temp = _write_temp(
                            session, sftp, backup_path, content, current.mode, (current.uid, current.gid), False, created
                        )
                        try:
                            # Plain SFTP rename refuses an existing target: a backup is never overwritten.
                            sftp.rename(temp, backup_path)
                        except OSError as exc:
                            raise _failure(session, exc, "storing the backup", backup_path) from None
                        created.remove(temp)
                    finally:
                        for temp in created:
                            _remove_quietly(sftp, temp)
                else:
                    # A run killed between copying and recording: the copy is of the original.
                    content = _read(session, sftp, backup_path)
                entry = BackupEntry(
                    path,
                    existed=True,
                    backup=name,
                    sha256=hashlib.sha256(content).hexdigest(),
                    size=len(content),
                    mode=current.mode,
                    uid=current.uid,
                    gid=current.gid,
                )
            added[path] = entry
        if added:
            # Once for all the files: a run killed before this finds the copies on its next try (above).
            manifest = BackupManifest(manifest.rotation_id, manifest.host, directory, {**manifest.entries, **added})
            _write_manifest(session, sftp, manifest)
        _sync_dirs(session, [directory])
        return manifest


def restore(session: HostSession, rotation_id: str, *, timeout: float | None = None) -> Restored:
    """Put every file the rotation replaced back as it was, and remove the files it added."""
    directory = backup_dir(_certs_dir(session), rotation_id)
    with session.step(f"restoring the files backed up in {directory}", timeout), session.files_lock:
        sftp = session.sftp()
        manifest = _read_manifest(session, sftp, directory)
        if manifest is None:
            raise StepFailed(
                f"{session.label}: there is no backup of rotation {rotation_id} in {directory}, so there is "
                f"nothing to restore from; check the rotation id."
            )
        files = []
        for path in commit_order(p for p, e in manifest.entries.items() if e.existed):
            entry = manifest.entries[path]
            content = _read(session, sftp, posixpath.join(directory, entry.backup or ""))
            if hashlib.sha256(content).hexdigest() != entry.sha256:
                raise StepFailed(
                    f"{session.label}: the backup of {path} in {directory} no longer matches its recorded sha256; "
                    f"nothing was restored — inspect the backup by hand."
                )
            files.append(RemoteFile(path, content, entry.mode, entry.uid, entry.gid))
        items = [_plan(session, sftp, file) for file in files]
        for item in items:
            item.owner_required = False  # without root the mode at least is restored
        results = _replace(session, items)
        removed = []
        for path, entry in sorted(manifest.entries.items()):
            if not entry.existed and _lstat(session, sftp, path) is not None:
                try:
                    sftp.remove(path)
                except OSError as exc:
                    raise _failure(session, exc, "removing the added file", path) from None
                removed.append(path)
        _sync_dirs(session, [posixpath.dirname(p) for p in removed])
    return Restored(
        host=session.name,
        restored=[r.path for r in results if r.changed],
        removed=removed,
        unchanged=[r.path for r in results if not r.changed],
    )


def remove_backup(session: HostSession, rotation_id: str, *, timeout: float | None = None) -> None:
    """Delete a finished rotation's backup directory (it holds old private keys)."""
    directory = backup_dir(_certs_dir(session), rotation_id)
    with session.step(f"removing the backups in {directory}", timeout), session.files_lock:
        sftp = session.sftp()
        if _lstat(session, sftp, directory) is None:
            return
        try:
            for name in sftp.listdir(directory):
                sftp.remove(posixpath.join(directory, name))
            sftp.rmdir(directory)
        except OSError as exc:
            raise _failure(session, exc, "removing the backups in", directory) from None
