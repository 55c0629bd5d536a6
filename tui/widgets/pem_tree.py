"""A file tree that shows only what can hold a certificate or a key, for picking a pair to install."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from textual.widgets import DirectoryTree

PEM_SUFFIXES = (".crt", ".pem", ".cer", ".key")


class PemFileTree(DirectoryTree):
    """Directories and .crt/.pem/.cer/.key files; hidden entries (backups, locks) are left out."""

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        return [path for path in paths if not path.name.startswith(".")
                and (path.is_dir() or path.suffix.lower() in PEM_SUFFIXES)]
