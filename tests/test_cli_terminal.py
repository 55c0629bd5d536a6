"""Without a terminal the wizard says so in one sentence and exits 2, instead of drawing into a pipe forever."""

from __future__ import annotations

import subprocess

from tests.rotation_support import CERTROTATE


def test_the_wizard_piped_into_cat_exits_2_with_one_sentence(tmp_path):
    # `certrotate | cat`: stdout is a pipe; stdin stays whatever the test runner has
    piped = subprocess.run(f"{' '.join(CERTROTATE)} --state {tmp_path / 'certrotate.toml'} | cat; "
                           "exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash",
                           capture_output=True, text=True, timeout=60)
    assert piped.returncode == 2
    assert piped.stdout == ""
    lines = piped.stderr.splitlines()
    assert len(lines) == 1 and "needs a terminal" in lines[0] and "stdout" in lines[0]
    assert not (tmp_path / "certrotate.toml").exists() and not (tmp_path / "certrotate.toml.lock").exists()
