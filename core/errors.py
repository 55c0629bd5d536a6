"""Expected failures, each carrying one sentence an operator can act on.

The CLI and the wizard show `str(error)` and exit with `error.exit_code`; anything
that is not a CertRotateError is a bug and may show a traceback.
"""


class CertRotateError(Exception):
    """A failure the operator can fix; the message names the thing and the fix."""

    exit_code = 1


class BadInput(CertRotateError):
    """The operator gave us something unusable: a file, a flag, a name."""

    exit_code = 2


class StepFailed(CertRotateError):
    """A step on a host failed; the state stays consistent and the step can be retried."""

    exit_code = 1


class LockHeld(CertRotateError):
    """Another certrotate process holds the state file's lock."""

    exit_code = 3


def named(host: str, error: CertRotateError) -> str:
    """The error's sentence, starting with the host's name once, not twice."""
    text = str(error)
    return text if text.startswith(host) else f"{host}: {text}"


class SecretNeeded(BadInput):
    """A CA key's passphrase or a token's PIN is missing or wrong; the wizard asks for it and tries again.

    `secret` is "passphrase" or "pin"; `wrong` says a given one was refused (ask again, not the same).
    """

    def __init__(self, sentence: str, *, secret: str, source: str, wrong: bool = False):
        super().__init__(sentence)
        self.secret = secret
        self.source = source
        self.wrong = wrong
