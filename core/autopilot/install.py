"""`certrotate autopilot install`: the systemd service + timer, or the crontab line, that run autopilot.

Both run the same command: `<certrotate> autopilot --state <absolute state file> --jitter <seconds>`,
every 15 minutes. A pass outside the maintenance window only reads, so running often costs little
and the first pass of a window comes at most 15 minutes after it opens; the jitter spreads the
work of many clusters inside the window.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from core.config.autopilot_policy import DEFAULT_JITTER_SECONDS

EVERY_MINUTES = 15


def unit_name(cluster: str) -> str:
    """certrotate-autopilot-<cluster>, with what systemd unit names cannot hold replaced by '-'."""
    return "certrotate-autopilot-" + (re.sub(r"[^A-Za-z0-9_.-]", "-", cluster).strip("-") or "cluster")


def command(program: list[str], state_path: Path, jitter: int = DEFAULT_JITTER_SECONDS) -> list[str]:
    return [*program, "autopilot", "--state", str(state_path), "--jitter", str(jitter)]


def _systemd_quote(word: str) -> str:
    """systemd's own quoting for ExecStart: % is a specifier there and must be doubled."""
    word = word.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _systemd_path(path: Path) -> str:
    """A path setting takes the rest of the line as the path; only % needs escaping there."""
    return str(path).replace("%", "%%")


def systemd_units(cluster: str, argv: list[str], state_path: Path, *, user: str | None) -> dict[str, str]:
    """{file name: content} of the .service and .timer; `user` None: a --user unit (runs as its owner)."""
    name = unit_name(cluster)
    exec_start = " ".join(_systemd_quote(word) for word in argv)
    user_line = f"User={user}\n" if user else ""
    service = (
        "[Unit]\n"
        f"Description=certrotate autopilot for cluster {cluster}: renew certificates inside maintenance windows\n"
        "After=network-online.target\n"
        "Wants=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{user_line}"
        f"WorkingDirectory={_systemd_path(state_path.parent)}\n"
        f"ExecStart={exec_start}\n"
        "# An encrypted CA key's passphrase, if any: CERTROTATE_CA_KEY_PASSPHRASE in a file only this user reads.\n"
        f"EnvironmentFile=-{_systemd_path(state_path.parent / 'autopilot.env')}\n"
    )
    timer = (
        "[Unit]\n"
        f"Description=Run certrotate autopilot for cluster {cluster} every {EVERY_MINUTES} minutes\n"
        "\n"
        "[Timer]\n"
        f"OnCalendar=*:0/{EVERY_MINUTES}\n"
        "Persistent=true\n"
        "\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return {f"{name}.service": service, f"{name}.timer": timer}


def systemd_howto(cluster: str, directory: str, user_mode: bool) -> str:
    name = unit_name(cluster)
    ctl = "systemctl --user" if user_mode else "systemctl"
    linger = ("\n# Without a login session the user's timers stop; keep them running with:\n"
              "#   loginctl enable-linger $USER") if user_mode else ""
    return (f"# Put both files in {directory}/, then:\n"
            f"#   {ctl} daemon-reload\n"
            f"#   {ctl} enable --now {name}.timer\n"
            f"#   {ctl} list-timers {name}.timer      # when it runs next\n"
            f"#   journalctl {'--user ' if user_mode else ''}-u {name}.service   # what each pass said"
            f"{linger}")


def _cron_quote(word: str) -> str:
    return shlex.quote(word).replace("%", "\\%")  # cron turns an unescaped % into a newline


def cron_schedule() -> str:
    return f"*/{EVERY_MINUTES} * * * *"


def crontab_line(argv: list[str]) -> str:
    """The line for `crontab -e` (the user's own crontab)."""
    return f"{cron_schedule()} {' '.join(_cron_quote(word) for word in argv)}"


def cron_d_file(argv: list[str], user: str, cluster: str) -> str:
    """A file for /etc/cron.d: the same line with the user it runs as."""
    return (f"# certrotate autopilot for cluster {cluster}\n"
            "SHELL=/bin/sh\n"
            f"{cron_schedule()} {user} {' '.join(_cron_quote(word) for word in argv)}\n")
