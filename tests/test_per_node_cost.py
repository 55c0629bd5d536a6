"""The pieces that keep a run's cost per node flat. Without a network: paced state-file saves, the
bundle plan's probes (the served leaf checked on the trust probes' own handshakes), the verdicts
that call for an RSA probe, known_hosts read once per file version, the one deadline thread,
and invoke imported only when ~/.ssh/config needs it. On a lab: one remote command per node in
the trust step."""

import subprocess
import sys
import threading
import time

from core.remote import known_hosts
from core.remote.deadlines import Deadline
from core.remote.probes import TrustResult
from core.rotation import save_pacing, trust_probes
from core.rotation.model import ExpectServed, ExpectTrust, RunCommand, WriteFiles
from core.rotation.plans import HostFacts, TrustCheck, plan_bundle

CERTS = "/var/lib/cockroach/certs"
SERVED = "ab" * 32


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- saves ------------------------------------------------------------------------------------------


def test_a_parallel_step_saves_the_first_host_at_once_then_at_most_every_interval_and_always_at_the_end():
    clock, saves = FakeClock(), []
    pacer = save_pacing.SavePacer(lambda: saves.append(clock.now), clock=clock)
    pacer.host_done()
    for _ in range(10):  # ten hosts finish within 0.1 s: no save for them
        clock.now += 0.01
        pacer.host_done()
    clock.now += save_pacing.MIN_INTERVAL
    pacer.host_done()
    pacer.now()
    assert saves == [100.0, clock.now, clock.now]


def test_a_slow_save_spaces_the_next_ones_out_in_proportion():
    clock, saves = FakeClock(), []

    def slow_save():
        saves.append(clock.now)
        clock.now += 0.1  # a big state file

    pacer = save_pacing.SavePacer(slow_save, clock=clock)
    pacer.host_done()
    clock.now += save_pacing.MIN_INTERVAL + 0.1
    pacer.host_done()  # 1.2 s later: still within SHARE x 0.1 s
    clock.now += save_pacing.SHARE * 0.1
    pacer.host_done()
    assert len(saves) == 2


# -- the bundle plan --------------------------------------------------------------------------------


def plan(facts: HostFacts, checks: list[TrustCheck], verified: bool = False):
    return plan_bundle("n1", CERTS, facts, b"bundle", reload="kill -HUP 1", sql_addr="10.0.0.1:26257",
                       checks=checks, backup_id="r1.trust", verified=verified)


def test_the_trust_probes_carry_the_served_check_so_no_probe_of_its_own_is_planned():
    checks = [TrustCheck("new", True), TrustCheck("old", True)]
    actions = plan(HostFacts("n1", {f"{CERTS}/ca.crt": None}, SERVED), checks)
    assert [type(a) for a in actions] == [WriteFiles, RunCommand, ExpectTrust, ExpectTrust]
    assert [a.serves for a in actions[2:]] == [SERVED, SERVED]
    assert "and serves certificate abababababababab" in actions[2].describe()[0]


def test_a_refused_probe_carries_no_served_check_and_without_an_accepted_probe_the_served_check_stays():
    retire = plan(HostFacts("n1", {}, SERVED), [TrustCheck("new", True), TrustCheck("old", False)])
    assert [a.serves for a in retire if isinstance(a, ExpectTrust)] == [SERVED, None]
    only_refusals = plan(HostFacts("n1", {}, SERVED), [TrustCheck("old", False)])
    assert ExpectServed("n1", "10.0.0.1:26257", SERVED) in only_refusals
    first_look = plan(HostFacts("n1", {}, None), [TrustCheck("new", True)])
    assert [a.serves for a in first_look if isinstance(a, ExpectTrust)] == [None]


def test_every_probe_of_a_plan_must_see_the_leaf_its_first_probe_saw():
    served = trust_probes.ServedInPlan()
    assert served.expected("a:1", None) is None
    served.saw("a:1", SERVED)
    served.saw("a:1", "cd" * 32)  # the first one stays
    assert served.expected("a:1", None) == SERVED
    assert served.expected("a:1", "ef" * 32) == "ef" * 32  # a known expectation wins


# -- P-256 or RSA ----------------------------------------------------------------------------------


def refused(alert: str) -> TrustResult:
    return TrustResult(False, f"a:1 rejected a client certificate signed by CN=x ({alert}).", "a:1", SERVED, alert)


def test_only_refusals_that_may_be_about_the_key_type_call_for_an_rsa_probe():
    assert trust_probes._inconclusive(refused("unsupported certificate"), trusted=False)
    assert trust_probes._inconclusive(refused("certificate required"), trusted=False)
    assert not trust_probes._inconclusive(refused("unknown CA"), trusted=False)  # a refusal of the CA: proof
    assert trust_probes._inconclusive("a:1 rejected a client certificate signed by CN=x (unsupported certificate).",
                                      trusted=True)
    assert not trust_probes._inconclusive("a:1 rejected a client certificate signed by CN=x (unknown CA).",
                                          trusted=True)
    assert not trust_probes._inconclusive(TrustResult(True, "accepted", "a:1", SERVED), trusted=True)


# -- known_hosts ------------------------------------------------------------------------------------


def test_known_hosts_is_read_again_when_the_file_changes_and_plain_names_match_in_any_case(tmp_path):
    path = tmp_path / "known_hosts"
    blob = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    path.write_text(f"[DB1.example.com]:2222 ssh-ed25519 {blob}\n")
    assert len(known_hosts.known_keys(path, "[db1.example.com]:2222")) == 1
    path.write_text(f"# rewritten\n*.example.com,!bad.example.com ssh-ed25519 {blob}\n")
    assert known_hosts.known_keys(path, "[db1.example.com]:2222") == []  # the old line is gone
    assert [key.line_number for key in known_hosts.known_keys(path, "db1.example.com")] == [2]
    assert known_hosts.known_keys(path, "bad.example.com") == []  # negated on its line


# -- deadlines -------------------------------------------------------------------------------------


def test_a_deadline_fires_once_when_its_time_is_up_and_never_once_cancelled():
    fired, cancelled_fired = threading.Event(), threading.Event()
    due = Deadline(0.05, fired.set)
    cancelled = Deadline(0.05, cancelled_fired.set)
    cancelled.cancel()
    assert fired.wait(5)
    assert due.expired and not cancelled.expired
    assert not cancelled_fired.is_set()


def test_many_cancelled_deadlines_do_not_pile_up():
    for _ in range(1000):
        Deadline(60, lambda: None).cancel()
    from core.remote import deadlines

    assert len(deadlines._keeper._heap) < 200


# -- imports ---------------------------------------------------------------------------------------


def test_invoke_is_imported_only_when_an_ssh_config_match_exec_needs_it():
    code = (
        "import sys, core.remote.ssh, paramiko\n"
        "print('invoke.tasks' in sys.modules)\n"
        "config = paramiko.SSHConfig.from_text('Match exec \"true\"\\n  User bob\\n')\n"
        "print(config.lookup('db1').get('user'), 'invoke.tasks' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "bob", "True"], result.stderr


# -- remote commands, on a real lab -----------------------------------------------------------------

def commands_started(node) -> int:
    """Commands the node's sshd started (LogLevel VERBOSE names each session: a command, or the sftp subsystem)."""
    return node.sshd.log_path.read_text(errors="replace").count("Starting session: command for")


def test_the_trust_step_runs_one_command_per_node_its_reload(lab):
    """Each command costs the node a login shell (its rc files): the clock is read from the files the
    node's kernel stamps over SFTP, so the reload is the only command."""
    from tests.rotation_support import certrotate

    assert certrotate(lab, "start", "ca").returncode == 0
    before = {node.name: commands_started(node) for node in lab.nodes}
    advanced = certrotate(lab, "advance")
    assert advanced.returncode == 0, advanced.stdout + advanced.stderr
    assert {node.name: commands_started(node) - before[node.name] for node in lab.nodes} == {
        node.name: 1 for node in lab.nodes}
