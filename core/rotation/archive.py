"""After retire, the old CA key leaves the working place for an archive beside it.

Once the old CA is out of every bundle, its key signs nothing any node or client accepts,
but it is still the key of a CA that was trusted for years: certrotate does not delete it
(an audit, or a certificate that must be proved to be ours, may need it). It moves it into
`retired/` next to where it lived (`safe/retired/ca.key`), the directory 0700 and the key
0600, so nothing picks it up as the key in force, and says where.
"""

from __future__ import annotations

import os
from pathlib import Path

from core import files
from core.errors import BadInput

RETIRED_DIR = "retired"
DIR_MODE = 0o700


def archive_path(key_path: Path, rotation_id: str) -> Path:
    """Where a retired key goes: retired/<its name>, or with the retiring rotation's id if that name is taken."""
    directory = key_path.parent / RETIRED_DIR
    target = directory / key_path.name
    if target.exists():
        target = directory / f"{key_path.stem}-retired-{rotation_id}{key_path.suffix}"
    return target


def archive_key(key_path: Path, rotation_id: str, in_use: set[Path]) -> Path | None:
    """Move the retired CA key into the archive; None when there is no such file or something still uses it."""
    key_path = Path(key_path)
    if not key_path.is_file() or key_path.resolve() in {path.resolve() for path in in_use}:
        return None
    target = archive_path(key_path, rotation_id)
    try:
        target.parent.mkdir(mode=DIR_MODE, exist_ok=True)
        os.chmod(target.parent, DIR_MODE)  # mkdir's mode is narrowed by the umask, and an existing dir kept its own
        os.chmod(key_path, files.PRIVATE_MODE)
        os.rename(key_path, target)  # the same directory tree: one rename, the key is never copied
        files.fsync_dir(target.parent)
        files.fsync_dir(key_path.parent)
    except OSError as error:
        raise BadInput(f"Could not move the retired CA key {key_path} to {target.parent}: {error.strerror}; "
                       "move it there by hand.") from None
    return target
