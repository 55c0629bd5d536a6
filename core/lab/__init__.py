"""The lab: a real test cluster on one machine — sshd + PostgreSQL per node on loopback.

Used as pytest fixtures (tests/conftest.py) and as the engine of `certrotate demo`.

- `core.lab.sshd.SshServer`: one sshd on 127.x.y.z:port with its own host key.
- `core.lab.postgres.PostgresServer`: one PostgreSQL doing TLS from a cockroach-style certs dir;
  `core.lab.postgres.connect_tls` connects with verify-full and a client certificate.
- `core.lab.cluster.start_lab`: N nodes, initial PKI, operator workspace and state file.
- `core.lab.scratch`: tmpfs scratch dirs for PostgreSQL data, swept (servers included)
  when the process that made them died; `core.lab.procs`: stop-by-pid helpers.

Every process is stopped by its own pid, never by name, by `stop()`, by fixture
finalizers and at interpreter exit. Nothing here imports Textual; psycopg (a test
dependency) only inside the helpers that return a connection.
"""

from core.lab.cluster import Lab, LabClientHost, LabNode, make_lab_dir, start_lab
from core.lab.postgres import PostgresServer, connect_tls
from core.lab.sshd import SshServer

__all__ = [
    "Lab",
    "LabClientHost",
    "LabNode",
    "PostgresServer",
    "SshServer",
    "connect_tls",
    "make_lab_dir",
    "start_lab",
]
