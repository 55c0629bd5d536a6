"""The wizard's calls into core that may block, each run in a worker thread (asyncio.to_thread).

The state-file operations read the file afresh (the engine saves it after every host, so
the file is the truth, not a copy the UI kept), change it through core, and save it.
core.rotation.engine and core.remote.ssh (paramiko) are imported here, inside the threads, so
the event loop never stalls on those imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.config import state as state_mod
from core.config.state import State

if TYPE_CHECKING:
    from core.remote.ssh import SshPool
    from core.rotation.engine import Outcome


def load(path: Path) -> State:
    return state_mod.load(path)


def start(path: Path, kind: str, **options: Any) -> State:
    from core.rotation import engine

    state = state_mod.load(path)
    engine.start(state, kind, **options)
    state_mod.save(state)
    return state


def confirm(path: Path, items: list[str]) -> State:
    from core.rotation import engine

    state = state_mod.load(path)
    engine.confirm(state, items)
    state_mod.save(state)
    return state


def new_pool() -> SshPool:
    from core.remote.ssh import SshPool

    return SshPool()


def advance(state: State, pool: SshPool, **options: Any) -> Outcome:
    from core.rotation import engine

    return engine.advance(state, pool, **options)


def rollback(state: State, pool: SshPool, **options: Any) -> Outcome:
    from core.rotation import engine

    return engine.rollback(state, pool, **options)


def export_dir(state: State, user: str) -> str:
    """Where a manually delivered client's files wait for the operator, relative to the state file."""
    from core.config.workspace import Workspace  # cryptography: not before the first frame

    ws = Workspace(state.base_dir, state.inventory.cluster)
    return ws.relative(ws.export_dir(user))
