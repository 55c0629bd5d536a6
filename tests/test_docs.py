"""The reference pages keep up with the code: every state-file field and every command and flag is described."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from core.config.inventory import ClientConfig, ClusterConfig, NodeConfig
from tui.cli import build_parser

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_field_of_the_state_file_is_described():
    text = (DOCS / "state-file.md").read_text()
    for table in (ClusterConfig, NodeConfig, ClientConfig):
        for field in dataclasses.fields(table):
            assert f"`{field.name}`" in text, f"{table.__name__}.{field.name} is not in docs/state-file.md"


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """(command path, its parser) for every command and sub-command."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_command_and_flag_is_described():
    text = (DOCS / "cli.md").read_text()
    for path, parser in _commands(build_parser()):
        if path:
            assert f"certrotate {' '.join(path)}" in text or f"`{path[-1]}`" in text, f"{path} is not in docs/cli.md"
        for action in parser._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert flag in text, f"{' '.join(path)} {flag} is not in docs/cli.md"
