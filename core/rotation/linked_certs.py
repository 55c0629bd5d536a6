"""Clients whose certs dir is a symlink to a directory (the certbot live/archive layout): deliver by swapping the link.

A client that reads its key and certificate through a link must never find one old and one
new file. When the observation shows that certs_dir is such a link, the client's files are
delivered as a `SwapLinkedDir` instead of a `WriteFiles`: the whole set goes into a new
versioned directory beside the current one, and the link is renamed over in one step
(core.remote.versioned_dirs). The directory the link had stays untouched: it is what the
rollback points the link back at. When the rotation ends (done or rolled back) the versions
certrotate made that the link no longer names are removed, as the backups of a plain
certs dir are: they hold old private keys. The directory the link named before the first
rotation, which certrotate did not make, is left for the operator, and the journal says so.
"""

from __future__ import annotations

import posixpath

from core.remote import versioned_dirs
from core.remote.remote_files import RemoteFile
from core.remote.ssh import HostSession
from core.rotation.model import Action, Progress, Reporter, SwapLinkedDir, WriteFiles
from core.rotation.plans import HostFacts, plan_client_files


def observe(session: HostSession, certs_dir: str) -> bool:
    """Whether the client's certs dir is a symlink straight to a directory (then its files go in by a swap)."""
    return versioned_dirs.observe(session, certs_dir) is not None


def plan_client_delivery(host: str, certs_dir: str, facts: HostFacts, files: dict[str, tuple[bytes, int]], *,
                         restart: str | None, backup_id: str, linked: bool) -> list[Action]:
    """The plain plan (what differs, then the restart); for a linked certs dir the writes become one swap."""
    actions = plan_client_files(host, certs_dir, facts, files, restart=restart, backup_id=backup_id)
    if not linked:
        return actions
    return [SwapLinkedDir(a.host, certs_dir, a.files, a.backup_id) if isinstance(a, WriteFiles) else a
            for a in actions]


def apply(session: HostSession, action: SwapLinkedDir, step: str, report: Reporter) -> None:
    """Carry out a SwapLinkedDir: the new version written and fsynced, then the link renamed over."""
    names = ", ".join(posixpath.basename(f.path) for f in action.files)
    report(Progress(action.host, step, "running", f"writing {names} into a new version of {action.certs_dir}"))
    ordered = [RemoteFile(f.path, f.content, f.mode) for f in action.files]
    swapped = versioned_dirs.deliver_new_version(session, action.certs_dir, ordered, version_id=action.backup_id)
    report(Progress(action.host, step, "running",
                    f"{action.certs_dir} now points to {swapped.current} (was {swapped.previous})"))


def restore(session: HostSession, certs_dir: str, backup_id: str) -> str | None:
    """Point the link back at the target it had before this step; a sentence for the journal, None if it had none."""
    if versioned_dirs.observe(session, certs_dir) is None:
        return None
    back = versioned_dirs.restore_previous(session, certs_dir, backup_id)
    return f"{certs_dir} points to {back[-1]} again" if back else None


def clean_up(session: HostSession, certs_dir: str) -> list[str]:
    """At the end of a rotation: the superseded versions removed; sentences for the journal."""
    result = versioned_dirs.remove_superseded(session, certs_dir)
    lines = [f"removed {path}, a version of {certs_dir} it no longer points to" for path in result.removed]
    lines += [f"kept {path}, which {certs_dir} pointed to before and certrotate did not make; it holds the old "
              "key: remove it when nothing needs it" for path in result.kept]
    return lines
