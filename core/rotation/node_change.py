"""What one node gets in a leaf step, as data: its files, the certificate it must then serve, where.

Every kind's leaf step on a node is the same change — upload the files as one change (keys
before certificates), reload once, prove the node serves the wanted certificate, put the
previous files back if it does not — and kinds differ only in this value: node.crt and its
companions for a CA or node rotation, client.node.crt alone in a client CA rotation, ui.crt
on the DB Console's address for a UI certificate. The delivery (core.rotation.deliveries)
carries it out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.rotation.model import SQL_PROBE, ExpectAccepted, Probe


@dataclass(frozen=True)
class NodeChange:
    """One node's new files and the proof that it loaded them. Contents never appear in repr()."""

    files: dict[str, tuple[bytes, int]] = field(repr=False)  # file name -> (content, mode), in upload order
    serves: str | None  # the certificate it must serve afterwards; None: the one it serves now
    probe: Probe = SQL_PROBE
    accepted: tuple[ExpectAccepted, ...] = ()  # client certificates it must then accept (client.node.crt)
    trusted: tuple[str, ...] = ()  # CAs whose client certificates it must then accept (a recovery's CA in force)
    recorded: dict[str, str] = field(default_factory=dict)  # the node record's fields once it is done
    done_text: str = ""  # the progress line once it is done
    journal: str = "leaf"  # the journal's name for it: "leaf restored", "ui certificate failed", ...
    key_made_on_node: bool = False  # node.key is the one the node made (key_on_node): renamed into place, not uploaded
