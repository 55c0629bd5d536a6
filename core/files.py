"""Operator-side file writes that are atomic and never expose a key, even for an instant.

A key file is created 0600 with O_EXCL under a temporary name, filled, fsynced and
then renamed (or hard-linked, when the target must not exist) into place, so a
crash leaves either the old file or the new one, never a half-written or
world-readable one.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from core.errors import BadInput

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int, overwrite: bool) -> None:
    """Write `data` to `path` in one step; refuse an existing `path` unless `overwrite`."""
    path = Path(path)
    directory = path.parent
    try:
        # a directory made for a key (safe/ for ca.key) is the owner's only, like the key itself
        directory.mkdir(parents=True, exist_ok=True, mode=0o700 if mode == PRIVATE_MODE else 0o777)
    except OSError as exc:
        raise BadInput(f"Cannot create directory {directory}: {exc.strerror}.") from None
    if not overwrite and path.exists():
        raise BadInput(f"{path} already exists; pass --overwrite to replace it.")
    temp = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as exc:
        raise BadInput(f"Cannot write in {directory}: {exc.strerror}.") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # umask may have narrowed it; never widened
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(temp, path)
        else:
            try:
                os.link(temp, path)  # fails if someone created `path` meanwhile
            except FileExistsError:
                raise BadInput(f"{path} already exists; pass --overwrite to replace it.") from None
            os.unlink(temp)
        fsync_dir(directory)
    except OSError as exc:
        raise BadInput(f"Cannot write {path}: {exc.strerror}.") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def write_private(path: Path, data: bytes, *, overwrite: bool) -> None:
    write_atomic(path, data, mode=PRIVATE_MODE, overwrite=overwrite)


def write_public(path: Path, data: bytes, *, overwrite: bool) -> None:
    write_atomic(path, data, mode=PUBLIC_MODE, overwrite=overwrite)


def read_bytes(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise BadInput(f"{what} {path} does not exist.") from None
    except IsADirectoryError:
        raise BadInput(f"{what} {path} is a directory, not a file.") from None
    except PermissionError:
        raise BadInput(f"{what} {path} is not readable (permission denied).") from None
    except OSError as exc:
        raise BadInput(f"Cannot read {what} {path}: {exc.strerror}.") from None


@dataclass(frozen=True)
class FileContent:
    """One file to write. `content` may be a private key: it never appears in repr()."""

    path: str
    content: bytes = field(repr=False)
    mode: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()
