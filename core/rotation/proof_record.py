"""What the state file records about client-side proofs, read without touching the network.

After certrotate delivers files to a client over SSH, it runs a TLS handshake from that
client's host with those files (core.rotation.client_proof) and records the result in the
client's record: `proof` ("proven", "failed" or "unproven": no tool to prove it with),
`proof_step`, `proof_detail`, `proof_node`, `proof_tool`, `proof_at`. Retiring the old CA
while a client's new certificate was never proven from its host needs the operator's
word (`proof_waived`), asked by the wizard and given by `advance --yes`.

The wizard's home screen reads these before its first paint, so this module imports
nothing heavier than the state file.
"""

from __future__ import annotations

from typing import Any

from core.config.record import DONE, RotationRecord, client_key
from core.config.state import State

PROVEN, FAILED, UNPROVEN = "proven", "failed", "unproven"
WAIVER_KEY = "proof_waived"
LEAF_STEPS = ("leaf", "retire")  # a proof made with the new client certificate
LABELS = {PROVEN: "proven from host", FAILED: "proof FAILED", UNPROVEN: "could not prove"}


def proof_of(record: dict[str, Any]) -> dict[str, Any]:
    """The recorded proof of one client, as `status --json` shows it (empty: none yet)."""
    keys = ("proof", "proof_step", "proof_tool", "proof_node", "proof_detail", "proof_at")
    return {key.removeprefix("proof_") if key != "proof" else "result": record[key] for key in keys if key in record}


def history_entry(rotation: dict[str, Any]) -> dict[str, Any]:
    """What a finished rotation keeps of its client proofs: {"client_proofs": {client: proof}} (none: {})."""
    proofs = {key: proof_of(record) for key, record in RotationRecord(rotation).clients().items() if "proof" in record}
    return {"client_proofs": proofs} if proofs else {}


def label(record: dict[str, Any]) -> str:
    """A few words for the host table: how the last delivery was proven from the client's host."""
    result = record.get("proof")
    if result is None:
        return ""
    return f"{LABELS.get(result, result)} ({record.get('proof_step', '?')})"


def new_leaf_proven(record: dict[str, Any]) -> bool:
    return record.get("proof") == PROVEN and record.get("proof_step") in LEAF_STEPS


def unproven_clients(state: State) -> list[str]:
    """SSH clients holding a new certificate of this rotation that no handshake from their host has proven
    (and the operator has not waived); retiring the old CA waits for the operator's word on them."""
    if state.inventory.cluster.on_kubernetes:
        return []
    records = RotationRecord(state.rotation).clients()
    pending = []
    for client in state.inventory.clients:
        record = records.get(client_key(client), {})
        if client.delivered_over_ssh and record.get("leaf") == DONE and not new_leaf_proven(record) \
                and not record.get(WAIVER_KEY):
            pending.append(client_key(client))
    return pending


def retire_confirm_key(state: State) -> str:
    """Which confirmation the retire phase collects: deliveries first, then waivers of missing proofs."""
    records = RotationRecord(state.rotation).clients()
    if any(not records.get(client_key(c), {}).get("leaf_confirmed") for c in state.inventory.clients):
        return "leaf_confirmed"
    return WAIVER_KEY if unproven_clients(state) else "leaf_confirmed"
