"""Paths in the inventory, as the signers read them: relative to the state file's directory, ~ expanded."""

from __future__ import annotations

from pathlib import Path


def resolve_local(path: str, base: Path) -> Path:
    expanded = Path(path).expanduser()
    return expanded if expanded.is_absolute() else base / expanded
