"""The wizard's calls into core that may block, each run in a worker thread (asyncio.to_thread).

The state-file operations read the file afresh (the engine saves it after every host, so
the file is the truth, not a copy the UI kept), change it through core, and save it.
core.engine and core.ssh_transport (paramiko) are imported here, inside the threads, so
the event loop never stalls on those imports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import state as state_mod
from core.state import State
from core.workspace import Workspace

if TYPE_CHECKING:
    from core.engine import Outcome
    from core.ssh_transport import SshPool


def load(path: Path) -> State:
    return state_mod.load(path)


def start(path: Path, kind: str, **options: Any) -> State:
    from core import engine

    state = state_mod.load(path)
    engine.start(state, kind, **options)
    state_mod.save(state)
    return state


def confirm(path: Path, items: list[str]) -> State:
    from core import engine

    state = state_mod.load(path)
    engine.confirm(state, items)
    state_mod.save(state)
    return state


def new_pool() -> SshPool:
    from core.ssh_transport import SshPool

    return SshPool()


def advance(state: State, pool: SshPool, **options: Any) -> Outcome:
    from core import engine

    return engine.advance(state, pool, **options)


def rollback(state: State, pool: SshPool, **options: Any) -> Outcome:
    from core import engine

    return engine.rollback(state, pool, **options)


def export_dir(state: State, user: str) -> str:
    """Where a manually delivered client's files wait for the operator, relative to the state file."""
    ws = Workspace(state.base_dir, state.inventory.cluster)
    return ws.relative(ws.export_dir(user))
