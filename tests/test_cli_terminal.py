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


def test_the_wizard_on_a_damaged_state_file_exits_2_with_one_sentence_before_taking_the_screen(tmp_path):
    """In a terminal: the file is read (once, under the lock) before the screen is taken over; nothing changes."""
    import os

    state = tmp_path / "certrotate.toml"
    state.write_text('[cluster]\nname = "prod"\n[[nodes]]\nname = 3\n')
    before = state.read_bytes()
    leader, follower = os.openpty()
    try:
        run = subprocess.run([*CERTROTATE, "--state", str(state)], stdin=follower, stdout=follower,
                             stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    assert run.returncode == 2
    lines = run.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("certrotate: ") and str(state) in lines[0], lines
    assert state.read_bytes() == before and not (tmp_path / "certrotate.toml.lock").exists()
