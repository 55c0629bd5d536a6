"""The wizard's short state-file operations, run in worker threads: core calls, nothing else.

Each reads the state file afresh (the engine saves it after every host, so the file is
the truth, not a copy the UI kept), changes it through core, and saves it.
"""

from __future__ import annotations

from pathlib import Path

from core import engine
from core import state as state_mod
from core.state import State
from core.workspace import Workspace


def load(path: Path) -> State:
    return state_mod.load(path)


def start(path: Path, kind: str) -> State:
    state = state_mod.load(path)
    engine.start(state, kind)
    state_mod.save(state)
    return state


def confirm(path: Path, items: list[str]) -> State:
    state = state_mod.load(path)
    engine.confirm(state, items)
    state_mod.save(state)
    return state


def export_dir(state: State, user: str) -> str:
    """Where a manually delivered client's files wait for the operator, relative to the state file."""
    ws = Workspace(state.base_dir, state.inventory.cluster)
    return ws.relative(ws.export_dir(user))
