"""atheris entry point for tests/test_reliability_fuzz.py: `python fuzz_state_targets.py {state|bundle} [libFuzzer flags]`.

The only acceptable outcome for any input is a value or a BadInput; anything else is an
uncaught exception, which atheris reports as a crash (non-zero exit, input saved).
"""

import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from core.config import state
    from core.errors import BadInput
    from core.pki import bundle

SOURCE = Path("/fuzz/certrotate.toml")


def state_target(data: bytes) -> None:
    try:
        state.parse_state(data, SOURCE)
    except BadInput:
        pass


def bundle_target(data: bytes) -> None:
    try:
        bundle.parse_bundle(data, "ca.crt")
    except BadInput:
        pass


if __name__ == "__main__":
    target = {"state": state_target, "bundle": bundle_target}[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
