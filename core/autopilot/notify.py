"""Telling a person: a JSON webhook, a command hook, and every service apprise reaches — once per event.

An event is sent once to each target: its key and the target are recorded in the state file
([autopilot_status] notified), so a pass every fifteen minutes does not page anyone every fifteen
minutes. A target that could not be reached is not recorded and is tried again on the next pass.

What goes out is built from the record only — cluster, event, phase, hosts, the time, what to do and
the sentence of an error — never a key, a passphrase or PEM; `_clean` refuses PEM all the same.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shlex
import socket
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from core.config.autopilot_policy import NotifyTarget
from core.config.state import State
from core.errors import BadInput

EVENTS = {
    "confirmation_needed": "a person is needed",
    "step_failed": "a step failed",
    "rotation_finished": "rotation finished",
    "cannot_rotate": "a certificate expires and cannot be rotated",
}
KEEP_SENT = 500  # notified entries kept in the state file
TIMEOUT_SECONDS = 20


@dataclass(frozen=True)
class Event:
    key: str  # what makes it the same event on the next pass
    event: str  # one of EVENTS
    cluster: str
    phase: str
    summary: str
    what_to_do: str
    when: dt.datetime
    hosts: tuple[str, ...] = ()
    rotation_id: str | None = None
    rotation_kind: str | None = None
    step: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The JSON object a webhook and a command hook receive (documented in README)."""
        body = {
            "cluster": self.cluster,
            "event": self.event,
            "title": EVENTS[self.event],
            "phase": self.phase,
            "rotation": {"id": self.rotation_id, "kind": self.rotation_kind} if self.rotation_id else None,
            "hosts": list(self.hosts),
            "step": self.step,
            "when": self.when.isoformat(),
            "summary": self.summary,
            "what_to_do": self.what_to_do,
            "sent_by": f"certrotate autopilot on {socket.gethostname()}",
            **self.extra,
        }
        return _clean(body)

    def title(self) -> str:
        return f"certrotate {self.cluster}: {EVENTS[self.event]}"

    def text(self) -> str:
        hosts = f"\nHosts: {', '.join(self.hosts)}" if self.hosts else ""
        return _clean(f"{self.summary}{hosts}\nWhat to do: {self.what_to_do}")


def _clean(value: Any) -> Any:
    """No PEM block ever leaves in a notification, whatever an error sentence happened to quote."""
    if isinstance(value, str):
        return "[PEM removed]" if "-----BEGIN" in value or "PRIVATE KEY" in value else value
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def target_id(target: NotifyTarget) -> str:
    """How the state file names a target: a hash, since hook URLs often carry a token."""
    return hashlib.sha256(f"{target.kind}:{target.value}".encode()).hexdigest()[:16]


def already_sent(state: State, event: Event, target: NotifyTarget) -> bool:
    tid = target_id(target)
    return any(e.get("key") == event.key and e.get("target") == tid for e in state.autopilot.get("notified", []))


def mark_sent(state: State, event: Event, target: NotifyTarget) -> None:
    sent = state.autopilot.setdefault("notified", [])
    sent.append({"key": event.key, "event": event.event, "target": target_id(target), "at": event.when})
    del sent[:-KEEP_SENT]


def send_webhook(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "certrotate"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            response.read()
    except urllib.error.HTTPError as error:
        raise OSError(f"it answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        raise OSError(str(getattr(error, "reason", error))) from None


def send_command(command: str, event: Event) -> None:
    """The program gets the JSON body on stdin and CERTROTATE_EVENT / CERTROTATE_CLUSTER in its environment."""
    argv = shlex.split(command)
    env = {**os.environ, "CERTROTATE_EVENT": event.event, "CERTROTATE_CLUSTER": event.cluster}
    env.pop("CERTROTATE_CA_KEY_PASSPHRASE", None)  # the hook has no business with the CA key
    try:
        done = subprocess.run(argv, input=json.dumps(event.body()).encode(), capture_output=True,
                              timeout=TIMEOUT_SECONDS, env=env)
    except (OSError, subprocess.TimeoutExpired) as error:
        raise OSError(getattr(error, "strerror", None) or str(error)) from None
    if done.returncode != 0:
        raise OSError(f"it exited {done.returncode}")


def send_apprise(url: str, event: Event) -> None:
    import apprise  # loaded only when an apprise target is configured

    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise OSError("apprise does not know this URL")
    if not notifier.notify(title=event.title(), body=event.text()):
        raise OSError("apprise could not deliver it")


def check_apprise_targets(targets: tuple[NotifyTarget, ...], source: str) -> None:
    """An apprise URL that apprise cannot parse is a typo the operator wants to hear about before an event."""
    urls = [t for t in targets if t.kind == "apprise"]
    if not urls:
        return
    import apprise

    for target in urls:
        if not apprise.Apprise().add(target.value):
            raise BadInput(f"{source}: [autopilot] notify names {target.label}…, which apprise does not know; "
                           "check the URL against apprise's list of services.")


def send(target: NotifyTarget, event: Event) -> None:
    """Deliver one event to one target; OSError with the cause when it did not arrive."""
    if target.kind == "webhook":
        send_webhook(target.value, event.body())
    elif target.kind == "command":
        send_command(target.value, event)
    else:
        send_apprise(target.value, event)


def deliver(state: State, targets: tuple[NotifyTarget, ...], event: Event) -> tuple[list[str], list[str]]:
    """Send `event` to every target that has not had it; record each success.

    Returns (the labels of the targets it went to now, the sentences of those it did not reach).
    """
    sent, failures = [], []
    for target in targets:
        if already_sent(state, event, target):
            continue
        try:
            send(target, event)
        except OSError as error:
            failures.append(f"notifying {target.label} of {event.event} failed: {error}")
            continue
        mark_sent(state, event, target)
        sent.append(target.label)
    return sent, failures
