"""The operator's known_hosts file: strict host-key checking and recording confirmed keys.

The rules are OpenSSH's with StrictHostKeyChecking=yes, minus the prompt:

- a host with no line in known_hosts raises `UnknownHostKey`, carrying the key and its
  fingerprint exactly as `ssh-keygen -lf` prints it, so the wizard can ask the operator to
  compare it with the host's own key and then call `record_host_key`;
- a host that has lines, none of which holds the key it presents now, raises
  `HostKeyChanged`: a hard stop, never a question, because that is what a
  man-in-the-middle looks like;
- for a port other than 22 the name looked up and recorded is `[host]:port`.

Hashed names (`|1|salt|hash`), `*`/`?` patterns, `!negations` and `@revoked` lines are
understood; `@cert-authority` lines are ignored (paramiko cannot check host
certificates). Recording appends one line and keeps every existing line, atomically.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko

from core.errors import BadInput, StepFailed
from core.files import write_atomic

DEFAULT_KNOWN_HOSTS = Path("~/.ssh/known_hosts")

_record_lock = threading.Lock()


def fingerprint(key_blob: bytes) -> str:
    """`SHA256:` + unpadded base64 of the key blob's sha256, as `ssh-keygen -lf` prints it."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def host_key_name(host: str, port: int) -> str:
    """The name OpenSSH files a host under: `host` on port 22, `[host]:port` elsewhere."""
    return host if port == 22 else f"[{host}]:{port}"


def key_type_of(key_blob: bytes) -> str:
    """The type string a public key blob starts with, e.g. `ssh-ed25519`."""
    try:
        return paramiko.Message(key_blob).get_text()
    except Exception:  # a blob too short to hold its own type is simply unnamed
        return "unknown"


@dataclass(frozen=True)
class KnownKey:
    line_number: int
    marker: str  # "" or "@revoked"
    key_type: str
    key_blob: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.key_blob)


class UnknownHostKey(StepFailed):
    """The host has no line in known_hosts; the operator must confirm its fingerprint."""

    def __init__(self, host: str, name: str, key: paramiko.PKey, known_hosts: Path):
        self.host = host
        self.host_key_name = name
        self.key = key
        self.key_type = key.get_name()
        self.fingerprint = fingerprint(key.asbytes())
        self.known_hosts = Path(known_hosts)
        super().__init__(
            f"{host} ({name}) is not in {self.known_hosts}: it presents the {self.key_type} key "
            f"{self.fingerprint}; compare it with `ssh-keygen -lf` of the host's public key "
            f"in /etc/ssh on {host} before trusting it."
        )

    def trust(self) -> None:
        """Record the key the host presented, after the operator confirmed the fingerprint."""
        record_host_key(self.known_hosts, self.host_key_name, self.key)


class HostKeyChanged(StepFailed):
    """The host presents a key that known_hosts does not hold for it: a hard stop."""

    def __init__(self, host: str, name: str, key: paramiko.PKey, known_hosts: Path, expected: list[KnownKey]):
        self.host = host
        self.host_key_name = name
        self.key = key
        self.fingerprint = fingerprint(key.asbytes())
        self.known_hosts = Path(known_hosts)
        self.expected = expected
        self.expected_fingerprint: str | None = None
        if any(known.marker == "@revoked" for known in expected):
            message = (
                f"{host} ({name}) presents the {key.get_name()} key {self.fingerprint}, which "
                f"{self.known_hosts} marks @revoked; refusing to connect until the host gets a new key."
            )
        else:
            same_type = [known for known in expected if known.key_type == key.get_name()]
            shown = (same_type or expected)[0]
            self.expected_fingerprint = shown.fingerprint
            message = (
                f"The host key of {host} ({name}) has CHANGED: {self.known_hosts} line "
                f"{shown.line_number} holds {shown.key_type} {shown.fingerprint}, the host now presents "
                f"{key.get_name()} {self.fingerprint}; this may be a man-in-the-middle attack, so "
                f"nothing was done — if the host was really reinstalled, remove the old line with "
                f"`ssh-keygen -R '{name}' -f {self.known_hosts}` and confirm the new key."
            )
        super().__init__(message)


def _pattern_matches(pattern: str, name: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            return paramiko.HostKeys.hash_host(name, pattern) == pattern
        except (binascii.Error, IndexError, ValueError):
            return False
    # Only `*` and `?` are wildcards in known_hosts; `[` is the literal of `[host]:port`.
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, name, flags=re.IGNORECASE) is not None


def _host_field_matches(field: str, name: str) -> bool:
    matched = False
    for pattern in field.split(","):
        negated = pattern.startswith("!")
        if _pattern_matches(pattern[1:] if negated else pattern, name):
            if negated:
                return False
            matched = True
    return matched


@dataclass(frozen=True)
class _Line:
    """One usable key line of a known_hosts file, parsed once."""

    number: int
    marker: str
    host_field: str
    key_type: str
    key_blob: bytes


@dataclass(frozen=True)
class _ParsedFile:
    """A known_hosts file's key lines, with the plain host names indexed: a run over many nodes
    looks every node up twice (key types, then the key), and re-reading and matching the whole
    file each time would cost each node as much as the file has lines."""

    stamp: tuple[int, int, int]  # st_ino, st_size, st_mtime_ns: any change reads the file again
    by_name: dict[str, tuple[_Line, ...]]  # lines whose host field is one or more plain names
    patterns: tuple[_Line, ...]  # lines with wildcards, negations or hashed names: matched one by one

    def matching(self, name: str) -> list[_Line]:
        lines = list(self.by_name.get(name.lower(), ()))
        lines += [line for line in self.patterns if _host_field_matches(line.host_field, name)]
        return sorted(lines, key=lambda line: line.number)


_parsed: dict[Path, _ParsedFile] = {}
_parsed_lock = threading.Lock()
_PLAIN = re.compile(r"[^*?!|,]+")


def _parse(text: str, stamp: tuple[int, int, int]) -> _ParsedFile:
    by_name: dict[str, list[_Line]] = {}
    patterns: list[_Line] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = ""
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
            if marker not in ("@revoked",):
                continue  # @cert-authority: host certificates are not checked by paramiko
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        parsed = _Line(number, marker, fields[0], fields[1], blob)
        names = fields[0].split(",")
        if all(_PLAIN.fullmatch(name) for name in names):
            for name in dict.fromkeys(name.lower() for name in names):
                by_name.setdefault(name, []).append(parsed)
        else:
            patterns.append(parsed)
    return _ParsedFile(stamp, {name: tuple(lines) for name, lines in by_name.items()}, tuple(patterns))


def _parsed_file(path: Path) -> _ParsedFile | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise BadInput(f"Cannot read known_hosts {path}: {exc.strerror}.") from None
    stamp = (info.st_ino, info.st_size, info.st_mtime_ns)
    with _parsed_lock:
        cached = _parsed.get(path)
    if cached is not None and cached.stamp == stamp:
        return cached
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise BadInput(f"known_hosts {path} is a directory; point known_hosts at a file.") from None
    except OSError as exc:
        raise BadInput(f"Cannot read known_hosts {path}: {exc.strerror}.") from None
    parsed = _parse(text, stamp)
    with _parsed_lock:
        _parsed[path] = parsed
    return parsed


def known_keys(known_hosts: Path, name: str) -> list[KnownKey]:
    """Every usable key line of `known_hosts` that applies to `name` (none if the file is absent)."""
    parsed = _parsed_file(Path(known_hosts).expanduser())
    if parsed is None:
        return []
    return [KnownKey(line.number, line.marker, line.key_type, line.key_blob) for line in parsed.matching(name)]


def preferred_host_key_types(known: list[KnownKey], offered: tuple[str, ...] | list[str]) -> list[str]:
    """`offered` reordered so the types already in known_hosts come first, as OpenSSH does.

    Without this, a host known by its RSA key that also has an ed25519 key would present
    the ed25519 one (paramiko's first choice) and look like a changed key.
    """
    first: list[str] = []
    for entry in known:
        if entry.marker:
            continue
        if entry.key_type == "ssh-rsa":
            wanted = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        else:
            wanted = [entry.key_type]
        first += [algorithm for algorithm in wanted if algorithm in offered and algorithm not in first]
    return first + [algorithm for algorithm in offered if algorithm not in first]


def check_host_key(known_hosts: Path, host: str, name: str, key: paramiko.PKey) -> None:
    """Return if `key` is the known key of `name`; raise UnknownHostKey or HostKeyChanged otherwise."""
    known_hosts = Path(known_hosts).expanduser()
    entries = known_keys(known_hosts, name)
    blob = key.asbytes()
    revoked = [entry for entry in entries if entry.marker == "@revoked" and entry.key_blob == blob]
    if revoked:
        raise HostKeyChanged(host, name, key, known_hosts, revoked)
    usable = [entry for entry in entries if not entry.marker]
    if not usable:
        raise UnknownHostKey(host, name, key, known_hosts)
    if any(entry.key_blob == blob for entry in usable):
        return
    raise HostKeyChanged(host, name, key, known_hosts, usable)


def record_host_key(known_hosts: Path, name: str, key: paramiko.PKey) -> None:
    """Append `name key-type base64` to known_hosts atomically, keeping every existing line.

    Recording a key that is already there changes nothing. Recording a second key for a
    host whose known key differs is refused: that is a changed key, which the operator
    must remove by hand (`ssh-keygen -R`) after finding out why it changed.
    """
    path = Path(os.path.realpath(Path(known_hosts).expanduser()))
    with _record_lock:
        entries = [entry for entry in known_keys(path, name) if not entry.marker]
        if any(entry.key_blob == key.asbytes() for entry in entries):
            return
        if entries:
            raise HostKeyChanged(name, name, key, path, entries)
        try:
            existing = path.read_bytes()
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            existing, mode = b"", 0o600
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise BadInput(f"Cannot create the directory of known_hosts {path}: {exc.strerror}.") from None
        if existing and not existing.endswith(b"\n"):
            existing += b"\n"
        line = f"{name} {key.get_name()} {key.get_base64()}\n".encode("ascii")
        write_atomic(path, existing + line, mode=mode, overwrite=True)
