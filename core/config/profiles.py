"""Cluster profiles: what differs between CockroachDB, PostgreSQL and any SIGHUP-reloading cluster.

One small object per profile, looked up once, so neither the engine nor the wizard
branches on the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import BadInput


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    reload_command: str | None  # run on a node when its [[nodes]] entry gives no `reload`
    probe_preamble: bool  # the SQL port speaks PostgreSQL's SSLRequest before TLS


PROFILES = {
    "cockroach": Profile(
        "cockroach",
        "CockroachDB: re-reads its certs dir on SIGHUP",
        # -x: the process name exactly, so `cockroach-sql` shells are not signalled
        "pkill -SIGHUP -x cockroach",
        True,
    ),
    "postgres": Profile(
        "postgres",
        "PostgreSQL: the postmaster re-reads ssl_* files on SIGHUP",
        # -o: the oldest `postgres` process is the postmaster; its children need no signal
        "pkill -HUP -o -x postgres",
        True,
    ),
    "generic": Profile("generic", "Any server that reloads certificates on SIGHUP; give each node a reload command", None, False),
}


def profile_for(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise BadInput(f"Unknown profile {name!r}; choose one of {', '.join(PROFILES)}.") from None
