"""The only package that talks to the network: SSH (paramiko), TLS probes, known_hosts.

paramiko imports `invoke` at once, for the one `Match exec` condition of ~/.ssh/config
(it runs the condition's command); invoke in turn pulls in unittest.mock, asyncio and a
YAML parser, a tenth of a second of every run's start. It is registered here as a module
that imports itself on first use: an SSH config with `Match exec` works as before, and
every other run skips it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types


class _OnFirstUse(types.ModuleType):
    """Stands in for a module until one of its attributes is asked for, then imports it for real."""

    def __getattr__(self, attr: str):
        real = self.__dict__.get("_real")
        if real is None:
            del sys.modules[self.__name__]
            try:
                real = importlib.import_module(self.__name__)
            except BaseException:
                sys.modules[self.__name__] = self
                raise
            self.__dict__["_real"] = real
        return getattr(real, attr)


def _defer(name: str) -> None:
    if name not in sys.modules and importlib.util.find_spec(name) is not None:
        sys.modules[name] = _OnFirstUse(name)


_defer("invoke")
