"""A certs dir that is a symlink to a directory: each new set goes into a new versioned directory, then the link moves.

Some hosts keep their TLS files the way certbot keeps `live/` and `archive/`: the path the
application reads (`/etc/app/certs`) is a symlink to a directory holding one version of
the set (`/etc/app/archive/certs.3`). Replacing the files inside that directory one by
one would let a reader that opens the key and then the certificate through the link see
one old and one new file. Instead:

1. a new directory `<target parent>/<link name>.<rotation id>.<step>` is created 0700, so
   nobody sees it while it fills; it is marked as certrotate's
   (`.certrotate-backup/version.json`) and records which target the link had before
   (`.certrotate-backup/<rotation id>.<step>/link.json`);
2. every file of the current set is copied into it with its mode and owner, and the new
   files are written over those copies — keys before certificates, each key 0600 from its
   creation, each file read back and compared before it gets its final name — and
   everything is fsynced;
3. the directory gets the previous directory's owner and mode (whoever read the old set
   reads the new one), the link's target is checked to be still the one we copied from,
   and a new symlink made under a temporary name is renamed over the link (posix-rename):
   a reader that opens files through the link resolves it either to the old directory or
   to the new one, so it sees all old files or all new ones.

On any failure before the rename, the new directory is removed and the link is untouched.
The previous directory is never changed, so it is the backup: `restore_previous` points
the link back at it, following the records step by step. At the end of the rotation
`remove_superseded` removes the versioned directories certrotate made that the link no
longer points to (they hold old private keys); a directory certrotate did not make is
never removed.
"""

from __future__ import annotations

import errno
import json
import posixpath
import re
import secrets
import stat as stat_module
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from core.errors import StepFailed
from core.remote import remote_files
from core.remote.remote_files import (
    BACKUP_DIR_NAME,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    RemoteFile,
    _failure,
    _lstat,
    _read,
    _remove_quietly,
    _replace_without_sync,
    _Replacement,
    _sync_dirs,
    _write_temp,
)
from core.remote.ssh import HostSession, check_remote_path

MARKER_NAME = "version.json"  # in <version>/.certrotate-backup/: certrotate made this directory
LINK_RECORD_NAME = "link.json"  # in <version>/.certrotate-backup/<rotation id>.<step>/: the link's previous target
_VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True)
class LinkedDir:
    """A certs dir that is a symlink: the link, its text as written, and the directory it names."""

    link: str  # the certs_dir path, e.g. /etc/app/certs
    text: str  # what the link says, e.g. archive/certs.3 or /etc/app/archive/certs.3
    target: str  # the directory it names, canonical, e.g. /etc/app/archive/certs.3

    @property
    def name(self) -> str:
        return posixpath.basename(self.link)


@dataclass(frozen=True)
class Swapped:
    """What a delivery into a new version did: the new directory and the link's previous text."""

    link: str
    directory: str
    previous: str
    current: str


# -- looking -------------------------------------------------------------------------------------


def _link_path(certs_dir: str) -> str:
    return check_remote_path(certs_dir.rstrip("/") or "/", "certs_dir")


def _readlink(session: HostSession, sftp: paramiko.SFTPClient, link: str) -> str:
    try:
        text = sftp.readlink(link)
    except OSError as exc:
        raise _failure(session, exc, "reading the symlink", link) from None
    if not text:
        raise StepFailed(f"{session.label}: the symlink {link} is empty; point it at the certs directory.")
    return text


def _resolve_parent(session: HostSession, sftp: paramiko.SFTPClient, link: str, text: str) -> str:
    """The canonical directory that holds the link's target (where the new versions go)."""
    base = posixpath.dirname(link) or "/"
    holder = posixpath.dirname(text)
    where = holder if holder.startswith("/") else posixpath.join(base, holder) if holder else base
    try:
        return sftp.normalize(where)
    except OSError as exc:
        raise _failure(session, exc, "resolving", where) from None


def _observe(session: HostSession, sftp: paramiko.SFTPClient, link: str) -> LinkedDir | None:
    entry = _lstat(session, sftp, link)
    if entry is None or entry.kind != "symlink":
        return None
    text = _readlink(session, sftp, link)
    parent = _resolve_parent(session, sftp, link, text)
    target = posixpath.join(parent, posixpath.basename(text.rstrip("/")))
    named = _lstat(session, sftp, target)
    if named is None or not named.is_dir:
        return None  # a link to a link, or a dangling one: written through like a plain directory
    return LinkedDir(link, text, target)


def observe(session: HostSession, certs_dir: str, *, timeout: float | None = None) -> LinkedDir | None:
    """The link when `certs_dir` is a symlink straight to a directory; None for a plain directory (or anything else)."""
    link = _link_path(certs_dir)
    with session.step(f"reading the attributes of {link}", timeout):
        return _observe(session, session.sftp(), link)


# -- records ---------------------------------------------------------------------------------------


def _record_dir(directory: str, version_id: str) -> str:
    return posixpath.join(directory, BACKUP_DIR_NAME, version_id)


def _read_json(session: HostSession, sftp: paramiko.SFTPClient, path: str) -> dict | None:
    if _lstat(session, sftp, path) is None:
        return None
    try:
        document = json.loads(_read(session, sftp, path))
    except ValueError:
        raise StepFailed(f"{session.label}: {path} is damaged; compare the certs directories by hand.") from None
    if not isinstance(document, dict):
        raise StepFailed(f"{session.label}: {path} is damaged; compare the certs directories by hand.")
    return document


def _write_json(session: HostSession, sftp: paramiko.SFTPClient, path: str, document: dict) -> None:
    data = (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()
    _replace_without_sync(session, sftp, _Replacement(path, data, 0o600, None, False, _lstat(session, sftp, path)))


def _mkdir_private(session: HostSession, sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        sftp.mkdir(path, 0o700)
        sftp.chmod(path, 0o700)  # the server's umask may have narrowed it; never wider than 0700 while filling
    except OSError as exc:
        raise _failure(session, exc, "creating the directory", path) from None


# -- delivering a new version ----------------------------------------------------------------------


def _current_set(session: HostSession, sftp: paramiko.SFTPClient, linked: LinkedDir) -> list[remote_files.RemoteStat]:
    """The entries of the current version to carry over: files and symlinks; certrotate's own entries left out."""
    try:
        entries = sftp.listdir_attr(linked.target)
    except OSError as exc:
        raise _failure(session, exc, "listing", linked.target) from None
    carried = []
    for attrs in sorted(entries, key=lambda a: a.filename):
        name = attrs.filename
        if name == BACKUP_DIR_NAME or (name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)):
            continue
        entry = remote_files._remote_stat(posixpath.join(linked.target, name), attrs)
        if entry.kind not in ("file", "symlink"):
            raise StepFailed(
                f"{session.label}: {entry.path} is a {entry.kind}, which certrotate does not copy into a new version "
                f"of {linked.link}; move it out of {linked.target}, or point certs_dir at the directory itself."
            )
        carried.append(entry)
    return carried


def _free_name(session: HostSession, sftp: paramiko.SFTPClient, parent: str, stem: str) -> str:
    """`<stem>`, or `<stem>.2`, `<stem>.3`, ... when a rerun of the step already made one (never reused)."""
    for n in range(1, 100):
        path = posixpath.join(parent, stem if n == 1 else f"{stem}.{n}")
        if _lstat(session, sftp, path) is None:
            return path
    raise StepFailed(f"{session.label}: {parent} already holds 99 versions named {stem}; remove the unused ones.")


def _remove_tree(sftp: paramiko.SFTPClient, path: str) -> None:
    """Remove a directory certrotate made, never following a symlink out of it."""
    for attrs in sftp.listdir_attr(path):
        child = posixpath.join(path, attrs.filename)
        if stat_module.S_ISDIR(attrs.st_mode or 0):
            _remove_tree(sftp, child)
        else:
            sftp.remove(child)
    sftp.rmdir(path)


def _readlink_quietly(sftp: paramiko.SFTPClient, link: str) -> str | None:
    try:
        return sftp.readlink(link)
    except (OSError, paramiko.SSHException, EOFError):
        return None


def _remove_tree_quietly(sftp: paramiko.SFTPClient, path: str) -> None:
    try:
        _remove_tree(sftp, path)
    except (OSError, paramiko.SSHException, EOFError):
        pass


def _planned(session: HostSession, sftp: paramiko.SFTPClient, replaces: str, content: bytes, mode: int | None,
             previous_dir: remote_files.RemoteStat) -> _Replacement:
    """A file of the new version, given the mode and owner of the file it replaces in the current one
    (a new file: its default mode and the directory's owner, as for a plain certs dir)."""
    old = _lstat(session, sftp, replaces)
    if old is not None and old.is_file:
        mode = mode if mode is not None else old.mode
        return _Replacement(replaces, content, mode, (old.uid, old.gid), not (mode & 0o004), old)
    mode = mode if mode is not None else remote_files.default_mode(replaces)
    return _Replacement(replaces, content, mode, (previous_dir.uid, previous_dir.gid), False, None)


def _put(session: HostSession, sftp: paramiko.SFTPClient, item: _Replacement, path: str) -> None:
    """Write one file of the new version: a verified temp inside it, renamed to its final name."""
    created: list[str] = []
    try:
        temp = _write_temp(session, sftp, path, item.content, item.mode, item.owner, item.owner_required, created)
        try:
            sftp.posix_rename(temp, path)
        except OSError as exc:
            raise _failure(session, exc, "naming the new file", path) from None
        created.remove(temp)
    finally:
        for temp in created:
            _remove_quietly(sftp, temp)


def _adopt_owner_and_mode(session: HostSession, sftp: paramiko.SFTPClient, directory: str,
                          previous: remote_files.RemoteStat) -> None:
    """The new version gets the previous one's owner and mode, so whoever read the old set reads the new one."""
    mine = _lstat(session, sftp, directory)
    if mine is not None and (mine.uid, mine.gid) != (previous.uid, previous.gid):
        try:
            sftp.chown(directory, previous.uid, previous.gid)
        except OSError:
            if previous.mode & 0o005 != 0o005:
                raise StepFailed(
                    f"{session.label}: as {session.endpoint.user} certrotate cannot give the new {directory} the "
                    f"owner of {previous.path} (uid {previous.uid}, gid {previous.gid}), who could then not read it, "
                    f"so the link was left unchanged; log in as root (ssh_user) to deliver."
                ) from None
    try:
        sftp.chmod(directory, previous.mode)
    except OSError as exc:
        raise _failure(session, exc, "setting the mode of", directory) from None


def _point_link(session: HostSession, sftp: paramiko.SFTPClient, link: str, text: str) -> None:
    """Make `link` say `text` in one rename: a new symlink under a temporary name, renamed over the old one
    (the caller syncs the link's directory)."""
    parent = posixpath.dirname(link) or "/"
    temp = posixpath.join(parent, f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}")
    try:
        sftp.symlink(text, temp)
    except OSError as exc:
        raise _failure(session, exc, "creating a new symlink beside", link) from None
    try:
        sftp.posix_rename(temp, link)
    except OSError as exc:
        _remove_quietly(sftp, temp)
        raise _failure(session, exc, "renaming the new symlink over", link) from None


def _sweep_temp_links(session: HostSession, sftp: paramiko.SFTPClient, link: str) -> None:
    """Temporary symlinks a killed run left beside the link (only called under the state file's lock)."""
    parent = posixpath.dirname(link) or "/"
    try:
        entries = sftp.listdir_attr(parent)
    except OSError:
        return
    for attrs in entries:
        name = attrs.filename
        if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX) and stat_module.S_ISLNK(attrs.st_mode or 0):
            _remove_quietly(sftp, posixpath.join(parent, name))


def deliver_new_version(session: HostSession, certs_dir: str, files: Sequence[RemoteFile], *, version_id: str,
                        timeout: float | None = None) -> Swapped:
    """Put `files` (names inside certs_dir, in commit order) into a new version of the linked certs dir, then swap.

    `version_id` (`<rotation id>.<step>`) names the new directory and its record; see the module docstring.
    """
    if not _VERSION_ID.fullmatch(version_id):
        raise StepFailed(f"Version id {version_id!r} cannot name a directory; use letters, digits, '.', '_' and '-'.")
    link = _link_path(certs_dir)
    names = [posixpath.basename(f.path) for f in files]
    for f in files:
        if posixpath.dirname(f.path.rstrip("/")) != link:
            raise StepFailed(f"{f.path} is not inside {link}; certrotate only puts files directly in the certs dir.")
    with session.step(f"delivering {', '.join(names)} into a new version of {link}", timeout), session.files_lock:
        sftp = session.sftp()
        linked = _observe(session, sftp, link)
        if linked is None:
            raise StepFailed(f"{session.label}: {link} is no longer a symlink to a directory; run the step again.")
        _sweep_temp_links(session, sftp, link)
        previous_dir = _lstat(session, sftp, linked.target)
        assert previous_dir is not None
        carried = _current_set(session, sftp, linked)
        new = {posixpath.basename(f.path): f for f in files}
        # What goes into the new version, each planned against the file it replaces in the current one.
        items: dict[str, _Replacement | str] = {}
        for entry in carried:
            if entry.name in new:
                continue
            if entry.kind == "symlink":
                items[entry.name] = _readlink(session, sftp, entry.path)
            else:
                items[entry.name] = _planned(session, sftp, entry.path, _read(session, sftp, entry.path), None,
                                             previous_dir)
        for name, f in new.items():
            items[name] = _planned(session, sftp, posixpath.join(linked.target, name), f.content, f.mode, previous_dir)
        parent = posixpath.dirname(linked.target)
        directory = _free_name(session, sftp, parent, f"{linked.name}.{version_id}")
        holder = posixpath.dirname(linked.text.rstrip("/"))
        text = posixpath.join(holder, posixpath.basename(directory)) if holder else posixpath.basename(directory)
        swapped = Swapped(link, directory, linked.text, text)
        _mkdir_private(session, sftp, directory)
        try:
            records = posixpath.join(directory, BACKUP_DIR_NAME)
            _mkdir_private(session, sftp, records)
            _write_json(session, sftp, posixpath.join(records, MARKER_NAME),
                        {"made_by": "certrotate", "link": link, "version": version_id})
            _mkdir_private(session, sftp, _record_dir(directory, version_id))
            _write_json(session, sftp, posixpath.join(_record_dir(directory, version_id), LINK_RECORD_NAME),
                        {"link": link, "previous": linked.text, "current": text, "version": version_id})
            for name in remote_files.commit_order(items):  # keys before certificates, here too
                item = items[name]
                path = posixpath.join(directory, name)
                if isinstance(item, str):
                    try:
                        sftp.symlink(item, path)
                    except OSError as exc:
                        raise _failure(session, exc, "copying the symlink", path) from None
                else:
                    _put(session, sftp, item, path)
                    if name not in new and item.old is not None:  # a carried file keeps its times too
                        try:
                            sftp.utime(path, (item.old.mtime, item.old.mtime))
                        except OSError:
                            pass
            _sync_dirs(session, [directory, records, _record_dir(directory, version_id)])
            _adopt_owner_and_mode(session, sftp, directory, previous_dir)
            if _readlink(session, sftp, link) != linked.text:
                raise StepFailed(f"{session.label}: {link} was changed while the new files were written; "
                                 "nothing was swapped — run the step again.")
            _point_link(session, sftp, link, text)
        except BaseException:
            if _readlink_quietly(sftp, link) != text:  # never remove the version the link already names
                _remove_tree_quietly(sftp, directory)
            raise
        _sync_dirs(session, [posixpath.dirname(link) or "/"])
        remote_files.log.info("%s: %s now points to %s (was %s)", session.name, link, text, linked.text)
        return swapped


# -- rollback and the end of the rotation ------------------------------------------------------------


def restore_previous(session: HostSession, certs_dir: str, version_id: str, *,
                     timeout: float | None = None) -> list[str]:
    """Point the link back at the target it had before step `version_id`; return the targets it went back to.

    A rerun of a step may have swapped more than once; each version's record names the one
    before it, so the link is walked back until its target holds no record of this step.
    """
    link = _link_path(certs_dir)
    back: list[str] = []
    with session.step(f"pointing {link} back at its previous target", timeout), session.files_lock:
        sftp = session.sftp()
        for _ in range(100):  # each rerun of a step made at most one version; 99 is the most _free_name makes
            linked = _observe(session, sftp, link)
            if linked is None:
                break
            record = _read_json(session, sftp, posixpath.join(_record_dir(linked.target, version_id), LINK_RECORD_NAME))
            if record is None:
                break
            previous = record.get("previous")
            if record.get("link") != link or record.get("current") != linked.text or not isinstance(previous, str):
                raise StepFailed(
                    f"{session.label}: {link} points to {linked.text}, which its record in {linked.target} does not "
                    f"describe; point it back at its previous directory by hand."
                )
            previous_target = posixpath.join(_resolve_parent(session, sftp, link, previous),
                                             posixpath.basename(previous.rstrip("/")))
            if _lstat(session, sftp, previous_target) is None:
                raise StepFailed(f"{session.label}: {previous_target}, the certs directory before this rotation, is "
                                 f"gone, so {link} was left pointing to {linked.text}; restore it from a backup.")
            _point_link(session, sftp, link, previous)
            _sync_dirs(session, [posixpath.dirname(link) or "/"])
            back.append(previous)
    return back


@dataclass(frozen=True)
class Cleanup:
    removed: list[str]  # versioned directories certrotate made that the link no longer points to
    kept: list[str]  # earlier targets certrotate did not make: left for the operator


def remove_superseded(session: HostSession, certs_dir: str, *, timeout: float | None = None) -> Cleanup:
    """Remove the versions certrotate made for this link that it no longer points to (they hold old keys)."""
    link = _link_path(certs_dir)
    removed: list[str] = []
    kept: list[str] = []
    with session.step(f"removing superseded versions of {link}", timeout), session.files_lock:
        sftp = session.sftp()
        linked = _observe(session, sftp, link)
        if linked is None:
            return Cleanup([], [])
        parent = posixpath.dirname(linked.target)
        try:
            entries = sftp.listdir_attr(parent)
        except OSError as exc:
            raise _failure(session, exc, "listing", parent) from None
        previous_targets: set[str] = set()
        for attrs in sorted(entries, key=lambda a: a.filename):
            path = posixpath.join(parent, attrs.filename)
            if not stat_module.S_ISDIR(attrs.st_mode or 0) or not attrs.filename.startswith(f"{linked.name}."):
                continue
            try:
                marker = _read_json(session, sftp, posixpath.join(path, BACKUP_DIR_NAME, MARKER_NAME))
                records = (_read_json(session, sftp, posixpath.join(
                    _record_dir(path, str(marker.get("version", ""))), LINK_RECORD_NAME)) if marker else None) or {}
            except StepFailed:  # a damaged record: not provably certrotate's, so left alone
                continue
            if marker is None or marker.get("link") != link:
                continue
            if isinstance(records.get("previous"), str):
                previous_targets.add(posixpath.basename(records["previous"].rstrip("/")))
            if path == linked.target:
                continue
            try:
                _remove_tree(sftp, path)
            except OSError as exc:
                if exc.errno == errno.ENOENT:
                    continue
                raise _failure(session, exc, "removing the superseded version", path) from None
            removed.append(path)
        for name in sorted(previous_targets):
            path = posixpath.join(parent, name)
            if path != linked.target and path not in removed and _lstat(session, sftp, path) is not None:
                kept.append(path)
        _sync_dirs(session, [parent] if removed else [])
    return Cleanup(removed, kept)
