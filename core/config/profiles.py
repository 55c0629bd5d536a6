"""Cluster profiles: what differs between CockroachDB, PostgreSQL and any SIGHUP-reloading cluster.

One small object per profile, looked up once, so neither the engine nor the wizard
branches on the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import BadInput


@dataclass(frozen=True)
class ClusterProfile:
    """How a cluster's database reloads certificates (not a certificate profile: that is core.pki.Profile)."""

    name: str
    description: str
    reload_command: str | None  # run on a node when its [[nodes]] entry gives no `reload`


PROFILES = {
    "cockroach": ClusterProfile(
        "cockroach",
        "CockroachDB: re-reads its certs dir on SIGHUP",
        # -x: the process name exactly, so `cockroach-sql` shells are not signalled
        "pkill -SIGHUP -x cockroach",
    ),
    "postgres": ClusterProfile(
        "postgres",
        "PostgreSQL: the postmaster re-reads ssl_* files on SIGHUP",
        # -o: the oldest `postgres` process is the postmaster; its children need no signal
        "pkill -HUP -o -x postgres",
    ),
    "generic": ClusterProfile("generic", "Any server that reloads certificates on SIGHUP; give each node a reload command", None),
}


def profile_for(name: str) -> ClusterProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BadInput(f"Unknown profile {name!r}; choose one of {', '.join(PROFILES)}.") from None
