"""The state file's journal: written once per entry, read only when something asks.

The journal is the largest part of a long-lived state file: a few entries per host for
every step of every rotation, kept for the audit. tomllib reads ~60 µs of it per entry and
tomli_w writes ~25 µs, so re-reading and re-writing all of it on every load and every save
made a cluster's tenth rotation slower than its first, and a big cluster's saves cost more
than its hosts. Entries never change once recorded, so:

- each entry is formatted once, as its own `[[journal]]` table; the journal section of the
  file is those tables in order, after every other table;
- the state file's checksum covers that section as text (a hash of bytes, not of parsed
  data), so a loaded journal is verified without being parsed;
- a loaded journal stays text until something reads it (rollback, the wizard's last
  action per host); recording an entry appends to it and parses nothing.
"""

from __future__ import annotations

import tomllib
from typing import Any, Iterator

from tomli_w._writer import Context, gen_table_chunks

HEADER = "[[journal]]\n"
SECTION_START = "\n" + HEADER  # a blank line, then the first entry's table header


def format_entry(entry: dict[str, Any]) -> str:
    """One entry as the file holds it: a blank line and its `[[journal]]` table.

    tomli_w's own array-of-tables writer, called for one table: `dumps` would write a short
    entry as an inline `journal = [{...}]`, which cannot be followed by another entry.
    (A private function of the pinned tomli_w; the state file's round-trip tests hold it.)
    """
    context = Context(False, 4)  # as tomli_w.dumps; one per entry (it caches by object id)
    return "\n" + "".join(gen_table_chunks(entry, context, name="journal", inside_aot=True))


def format_entries(entries: list[dict[str, Any]]) -> str:
    return "".join(format_entry(entry) for entry in entries)


class Journal:
    """The journal's entries, kept as the file's text and parsed on first read."""

    def __init__(self, text: str = "", entries: list[dict[str, Any]] | None = None) -> None:
        self._text = text  # the formatted section of the entries written so far
        self._entries = entries  # every entry, once parsed (None: only _text and _unformatted hold them)
        self._unformatted: list[dict[str, Any]] = []  # recorded since _text was last brought up to date
        self._parsed: dict[int, dict[str, Any]] = {}  # newest_first's entries, by their offset in _text

    @classmethod
    def of(cls, entries: list[dict[str, Any]]) -> Journal:
        journal = cls(entries=list(entries))
        journal._unformatted = list(entries)
        return journal

    def append(self, entry: dict[str, Any]) -> None:
        self._unformatted.append(entry)
        if self._entries is not None:
            self._entries.append(entry)

    def entries(self) -> list[dict[str, Any]]:
        """Every entry, oldest first. Record new ones with `append`, not on this list."""
        if self._entries is None:
            parsed = tomllib.loads(self._text).get("journal", []) if self._text else []
            self._entries = parsed + self._unformatted
        return self._entries

    def newest_first(self) -> Iterator[dict[str, Any]]:
        """Entries newest first, parsed only as far as the caller reads (the wizard wants each
        host's last action, near the end) and kept for the next call. Each entry of the text
        starts with its own `[[journal]]` header line, which nothing inside an entry can be."""
        if self._entries is not None:
            yield from reversed(self._entries)
            return
        yield from reversed(self._unformatted)
        text, end = self._text, len(self._text)
        while end > 0:
            start = text.rfind(SECTION_START, 0, end)
            if start < 0:
                return
            entry = self._parsed.get(start)
            if entry is None:
                entry = self._parsed[start] = tomllib.loads(text[start:end])["journal"][0]
            yield entry
            end = start

    def text(self) -> str:
        """The journal section of the file; formats only what was recorded since the last call."""
        if self._unformatted:
            self._text += format_entries(self._unformatted)
            self._unformatted = []
        return self._text

    def __bool__(self) -> bool:
        return bool(self._text or self._unformatted)
