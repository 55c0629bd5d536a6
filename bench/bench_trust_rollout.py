"""Trust rollout of a new CA: certrotate vs the manual `scp` + `ssh` loop, on a real lab.

The manual procedure (CockroachDB's "rotate the CA" docs, done by hand) copies the
combined ca.crt to each node and reloads it, one node after the other, and checks
nothing. certrotate's trust phase (`start ca` + `advance`) generates the new CA, uploads
the combined bundle to every node in parallel (with a backup), reloads, and verifies
each node with TLS probes; it then stops at the 30-day schedule gate.

Both run against the same lab (core.lab: a real sshd + PostgreSQL per node on
loopback), with the real OpenSSH `scp`/`ssh` for the loop and the `certrotate` CLI as
subprocesses. Between runs the nodes are put back as they were (untimed): the loop's
ca.crt is restored by hand, certrotate's rotation with `certrotate rollback --yes`.
Targets: certrotate at most 0.5x the loop's time at 12 nodes, and 48 nodes at most
1.5x its own 12-node time. Run by hand (as root or a normal user):

    .venv/bin/python bench/bench_trust_rollout.py [--nodes 12] [--large 48] [--repeat 3]
                                                  [--ssh-user postgres]

The lab's nodes share this machine's cores with certrotate, so every round is printed
with the CPU seconds of the bench's own processes (lab included) and of other work on the
machine. Before each timed section the bench waits (up to --quiet-wait seconds) for the
machine to calm down; a round that other work disturbed anyway is left out of the
medians and run again (up to --max-rounds). It also prints what one remote command costs
on the lab's login (the login shell runs its startup files for every command): the loop
runs one per node, certrotate three (two `sync -f` and the reload).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import pki
from core.config import state as state_mod
from core.errors import CertRotateError
from core.lab import Lab, LabNode, start_lab
from core.pki import bundle
from core.pki.certs_dir import CA_CERT
from core.remote.ssh import SshPool

SMALL_TARGET = 0.5  # certrotate / loop at the small size
SCALE_TARGET = 1.5  # certrotate large / certrotate small
STEP_DOWN = 8  # nodes fewer per retry when the large lab does not start
RUN_TIMEOUT = 600.0
QUIET_BUSY = 0.10  # machine busy fraction under which a timed section may start
# A sample is disturbed when other work took more than this share of the machine. Not all of
# "other" is foreign: sshd processes of the lab that outlive their parent on disconnect are
# reaped by init, so their CPU escapes the accounting (up to ~15% at 48 nodes with PAM on).
OTHER_SHARE = 0.20


# -- the machine ------------------------------------------------------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(busy, idle) clock ticks of all cores since boot (/proc/stat; idle includes iowait)."""
    with open("/proc/stat") as stat:
        ticks = [int(value) for value in stat.readline().split()[1:]]
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, idle


def busy_fraction(seconds: float = 1.0) -> float:
    busy_before, idle_before = machine_jiffies()
    time.sleep(seconds)
    busy, idle = machine_jiffies()
    total = (busy - busy_before) + (idle - idle_before)
    return (busy - busy_before) / total if total else 0.0


def own_tree_ticks() -> int:
    """CPU ticks of this process and every descendant: the lab's sshd and PostgreSQL servers,
    certrotate, scp and ssh. A process that ended counts in its parent's cutime/cstime once
    reaped, and the lab's servers reap their own children (SSH sessions, backends)."""
    parent_of: dict[int, int] = {}
    ticks_of: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        parent_of[int(entry)] = int(fields[1])
        ticks_of[int(entry)] = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    ours = {os.getpid()}
    grew = True
    while grew:
        found = {pid for pid, parent in parent_of.items() if parent in ours} - ours
        ours |= found
        grew = bool(found)
    return sum(ticks_of.get(pid, 0) for pid in ours)


@dataclass
class Sample:
    """One timed section: wall seconds, CPU seconds of the bench's own processes (lab included)
    and of everything else on the machine meanwhile."""

    seconds: float
    own_cpu_s: float
    other_cpu_s: float

    @property
    def disturbed(self) -> bool:
        """Other work took more than OTHER_SHARE of the machine: the figure is not clean."""
        return self.other_cpu_s > OTHER_SHARE * self.seconds * (os.cpu_count() or 1)


class Timed:
    """Time a section after waiting for a quiet machine: `with Timed(wait) as t: ...; t.sample`."""

    def __init__(self, quiet_wait: float) -> None:
        self.quiet_wait = quiet_wait
        self.sample: Sample | None = None

    def __enter__(self) -> "Timed":
        deadline = time.monotonic() + self.quiet_wait
        while busy_fraction() > QUIET_BUSY and time.monotonic() < deadline:
            pass
        self.machine_ticks = machine_jiffies()[0]
        self.own_ticks = own_tree_ticks()
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc_info: object) -> None:
        seconds = time.perf_counter() - self.start
        tick = os.sysconf("SC_CLK_TCK")
        own = (own_tree_ticks() - self.own_ticks) / tick
        machine = (machine_jiffies()[0] - self.machine_ticks) / tick
        self.sample = Sample(seconds, own, max(machine - own, 0.0))


# -- the manual loop --------------------------------------------------------------------------


def openssh_options(lab: Lab) -> list[str]:
    # BatchMode: a missing key or host key fails at once instead of prompting and hanging the bench.
    return ["-i", str(lab.operator_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"]


def manual_loop(lab: Lab, combined_ca: Path, quiet_wait: float) -> Sample:
    """The documented loop: per node, `scp` ca.crt into place, then `ssh` its reload command."""
    options = openssh_options(lab)
    with Timed(quiet_wait) as timed:
        for node in lab.nodes:
            login = f"{lab.ssh_user}@{node.address}"
            subprocess.run(["scp", "-q", *options, "-P", str(node.ssh_port), str(combined_ca),
                            f"{login}:{node.certs_dir / CA_CERT}"], check=True, capture_output=True, timeout=RUN_TIMEOUT)
            subprocess.run(["ssh", *options, "-p", str(node.ssh_port), login, node.reload_command],
                           check=True, capture_output=True, timeout=RUN_TIMEOUT)
    return timed.sample


def check_loop_result(lab: Lab, combined: bytes) -> None:
    wrong = [n.name for n in lab.nodes if (n.certs_dir / CA_CERT).read_bytes() != combined]
    if wrong:
        raise SystemExit(f"the manual loop did not leave the combined ca.crt on {', '.join(wrong)}")


def restore_ca_files(nodes: list[LabNode], originals: dict[str, bytes]) -> None:
    """Undo the loop (untimed), so that certrotate finds the bundle it knows from before."""
    for node in nodes:
        node.install_files({CA_CERT: originals[node.name]})
        node.reload()


# -- certrotate -------------------------------------------------------------------------------


def certrotate_command() -> list[str]:
    script = Path(sys.executable).with_name("certrotate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tui"]


def run_cli(lab: Lab, *args: str) -> None:
    result = subprocess.run([*certrotate_command(), *args, "--state", str(lab.state_path)],
                            capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if result.returncode != 0:
        raise SystemExit(f"certrotate {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")


@dataclass
class Verified:
    """What certrotate's journal says it checked on each node during one trust rollout."""

    nodes: int
    serves_previous: int = 0
    trusts_new: int = 0
    trusts_old: int = 0
    bundle_on_disk: int = 0
    other: list[str] = field(default_factory=list)

    def complete(self) -> bool:
        return self.serves_previous == self.trusts_new == self.bundle_on_disk == self.nodes


def verification_of_run(lab: Lab, journal_before: int) -> Verified:
    state = state_mod.load(lab.state_path)
    if state.phase != "wait":
        raise SystemExit(f"after advance the rotation is in phase {state.phase}, not wait (the 30-day gate)")
    rotation = state.rotation
    new_ca = rotation["new_ca"]["fingerprint"]
    old_cas = rotation.get("old_ca_fingerprints", [])
    verified = Verified(len(lab.nodes))
    for entry in state.journal[journal_before:]:
        if entry.get("action") != "trust: verify":
            continue
        detail = entry.get("detail", "")
        served_before = rotation.get("nodes", {}).get(entry.get("host"), {}).get("served_before", "")
        if " serves certificate " in detail and served_before and served_before[:16] in detail:
            verified.serves_previous += 1
        elif f" trusts CA {new_ca[:16]}" in detail:
            verified.trusts_new += 1
        elif any(f" trusts CA {fp[:16]}" in detail for fp in old_cas):
            verified.trusts_old += 1
        else:
            verified.other.append(f"{entry.get('host')}: {detail}")
    # Independent of the journal: the lab's files are local, so read what each node holds.
    wanted = rotation.get("combined_bundle_sha256")
    verified.bundle_on_disk = sum(
        1 for n in lab.nodes if hashlib.sha256((n.certs_dir / CA_CERT).read_bytes()).hexdigest() == wanted)
    return verified


def certrotate_rollout(lab: Lab, quiet_wait: float) -> tuple[Sample, float, Verified]:
    """`start ca` + `advance` timed as one section (and `start` alone), and what it verified."""
    journal_before = len(state_mod.load(lab.state_path).journal)
    with Timed(quiet_wait) as timed:
        run_cli(lab, "start", "ca")
        start_s = time.perf_counter() - timed.start
        run_cli(lab, "advance")
    return timed.sample, start_s, verification_of_run(lab, journal_before)


def roll_back(lab: Lab) -> None:
    run_cli(lab, "rollback", "--yes")
    # Rotation ids are stamped to the second; the next `start ca` must get a fresh one.
    time.sleep(1.1)


def remote_command_seconds(lab: Lab, runs: int = 5) -> float:
    """Mean seconds of `true` over an open SSH connection to the first node (untimed diagnostic)."""
    state = state_mod.load(lab.state_path)
    with SshPool() as pool:
        session = pool.session(state.inventory.nodes[0], state.base_dir)
        session.run("true")
        start = time.perf_counter()
        for _ in range(runs):
            session.run("true")
        return (time.perf_counter() - start) / runs


# -- one lab ----------------------------------------------------------------------------------


@dataclass
class LabResult:
    nodes: int
    ssh_user: str
    remote_command_s: float = 0.0
    loop: list[Sample] = field(default_factory=list)
    certrotate: list[Sample] = field(default_factory=list)
    start_s: list[float] = field(default_factory=list)  # of which `start ca`
    verified: list[Verified] = field(default_factory=list)


def bench_lab(lab: Lab, repeat: int, max_rounds: int, with_loop: bool, quiet_wait: float) -> LabResult:
    result = LabResult(len(lab.nodes), lab.ssh_user, remote_command_seconds(lab))
    originals = {n.name: (n.certs_dir / CA_CERT).read_bytes() for n in lab.nodes}
    # The loop's bundle is made beforehand: making a CA is not part of the loop's time.
    loop_ca = pki.issue_ca(key_type=state_mod.load(lab.state_path).inventory.cluster.key_type,
                           common_name="Cockroach CA (manual loop)")
    combined = bundle.combine(loop_ca.cert_pem, (lab.local_certs_dir / CA_CERT).read_bytes())
    combined_path = lab.workdir / "manual-loop-ca.crt"
    combined_path.write_bytes(combined)

    def clean(samples: list[Sample]) -> int:
        return sum(1 for sample in samples if not sample.disturbed)

    # A round disturbed by other work on the machine is run again, up to max_rounds in all.
    round_number = 0
    while round_number < max_rounds and (
        clean(result.certrotate) < repeat or (with_loop and clean(result.loop) < repeat)
    ):
        round_number += 1
        if with_loop:
            result.loop.append(manual_loop(lab, combined_path, quiet_wait))
            check_loop_result(lab, combined)
            restore_ca_files(lab.nodes, originals)
        sample, start_s, verified = certrotate_rollout(lab, quiet_wait)
        result.certrotate.append(sample)
        result.start_s.append(start_s)
        result.verified.append(verified)
        roll_back(lab)
        print(f"  {len(lab.nodes)} nodes, round {round_number}: "
              + (f"loop {describe(result.loop[-1])}; " if with_loop else "")
              + f"certrotate {describe(sample)} (start ca {start_s:.2f} s)", flush=True)
    return result


def describe(sample: Sample) -> str:
    return (f"{sample.seconds:.2f} s (cpu-s: ours {sample.own_cpu_s:.1f}, other {sample.other_cpu_s:.1f}"
            + (", DISTURBED" if sample.disturbed else "") + ")")


def start_largest_lab(wanted: int, floor: int, ssh_user: str | None) -> tuple[Lab, list[str]]:
    """A lab of `wanted` nodes, or the largest that starts here (stepping down), with why."""
    notes = []
    nodes = wanted
    while True:
        try:
            return start_lab(nodes=nodes, ssh_user=ssh_user), notes
        except (CertRotateError, OSError) as error:
            notes.append(f"a lab of {nodes} nodes did not start: {error}")
            nodes -= STEP_DOWN
            if nodes <= floor:
                raise SystemExit("\n".join(notes))


def run_on_lab(nodes: int, args: argparse.Namespace, with_loop: bool, floor: int = 0) -> tuple[LabResult, list[str]]:
    began = time.perf_counter()
    lab, notes = start_largest_lab(nodes, floor, args.ssh_user)
    with lab:
        print(f"lab of {len(lab.nodes)} nodes up in {time.perf_counter() - began:.1f} s ({lab.block}0/24), "
              f"logging in as {lab.ssh_user}", flush=True)
        result = bench_lab(lab, args.repeat, args.max_rounds or 3 * args.repeat, with_loop, args.quiet_wait)
    return result, notes


# -- report ---------------------------------------------------------------------------------


def median(samples: list[Sample]) -> float:
    """Median of the undisturbed samples; of all of them when every one was disturbed."""
    clean = [sample for sample in samples if not sample.disturbed] or samples
    return statistics.median(sample.seconds for sample in clean)


def listed(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def report(small: LabResult, large: LabResult, notes: list[str], requested_large: int) -> None:
    loop = median(small.loop)
    ours_small = median(small.certrotate)
    ours_large = median(large.certrotate)
    ratio_small = ours_small / loop
    ratio_large = ours_large / ours_small
    cores = os.cpu_count() or 1
    print()
    print(f"Trust rollout on {platform.node()} ({cores} cores, lab and certrotate on the same cores), "
          f"SSH login {small.ssh_user}; wall-clock seconds, median of the undisturbed rounds")
    print(f"{'':46}{'seconds':>9}{'ratio':>9}   target")
    print(f"{f'manual scp + ssh loop, {small.nodes} nodes':46}{loop:9.2f}")
    print(f"{f'certrotate start ca + advance, {small.nodes} nodes':46}{ours_small:9.2f}{ratio_small:8.2f}x"
          f"   <= {SMALL_TARGET}x the loop: {verdict(ratio_small, SMALL_TARGET)}")
    print(f"{f'certrotate start ca + advance, {large.nodes} nodes':46}{ours_large:9.2f}{ratio_large:8.2f}x"
          f"   <= {SCALE_TARGET}x its {small.nodes}-node time: {verdict(ratio_large, SCALE_TARGET)}")
    print()
    print(f"rounds: seconds, and CPU seconds (at most {cores} per second) of the bench's own processes "
          f"(certrotate or scp/ssh, and the lab's sshd/PostgreSQL) and of other work on the machine; "
          f"DISTURBED: other work took over {OTHER_SHARE:.0%} of the machine, left out of the median")
    rows = [(f"loop, {small.nodes} nodes", small.loop), (f"certrotate, {small.nodes} nodes", small.certrotate),
            (f"certrotate, {large.nodes} nodes", large.certrotate)]
    for label, samples in rows:
        print(f"  {label:24} " + "; ".join(describe(sample) for sample in samples))
    disturbed_rows = [label for label, samples in rows if all(sample.disturbed for sample in samples)]
    for result in (small, large):
        print(f"  {f'of which start ca, {result.nodes}':24} {listed(result.start_s)} s")
    print(f"  one remote command (`true` on an open connection, as {small.ssh_user}): "
          f"{small.remote_command_s:.3f} s; the loop runs 1 per node, certrotate 2 (`date` for the clock check, the reload)")
    for label in disturbed_rows:
        print(f"note: every round of '{label}' was disturbed by other work on the machine; its median is not clean.")
    for note in notes:
        print(f"note: {note}")
    if large.nodes != requested_large:
        print(f"note: {requested_large} nodes did not start here; the large lab has {large.nodes} nodes.")
    print()
    print("What each side verified:")
    print("  manual loop: nothing (scp and the reload's exit status only).")
    for result in (small, large):
        rounds = result.verified
        least = {name: min(getattr(v, name) for v in rounds)
                 for name in ("trusts_new", "trusts_old", "serves_previous", "bundle_on_disk")}
        print(f"  certrotate, {result.nodes} nodes, in each of its {len(rounds)} rounds (a new CA each time), "
              f"at least: {least['trusts_new']} nodes accepted a client certificate of the new CA (TLS handshake "
              f"with a throwaway client certificate), {least['trusts_old']} still accepted one of the old CA, "
              f"{least['serves_previous']} still served the certificate they served before (sha256 of the leaf); "
              f"the bench found the combined bundle on disk on {least['bundle_on_disk']}"
              + ("" if all(v.complete() for v in rounds) else "  INCOMPLETE"))
        for line in sorted({line for v in rounds for line in v.other}):
            print(f"    also: {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=12, help="nodes of the lab compared with the manual loop")
    parser.add_argument("--large", type=int, default=48, help="nodes of the lab for the scaling figure")
    parser.add_argument("--repeat", type=int, default=3,
                        help="undisturbed rounds wanted on each lab; the table shows their medians")
    parser.add_argument("--max-rounds", type=int, help="rounds at most on each lab (default 3x --repeat)")
    parser.add_argument("--ssh-user", help="login of every node (default: the current user, root as root)")
    parser.add_argument("--quiet-wait", type=float, default=120.0,
                        help="seconds to wait at most for other work on the machine to calm down before each section")
    args = parser.parse_args()
    for tool in ("scp", "ssh"):
        if shutil.which(tool) is None:
            raise SystemExit(f"the OpenSSH client `{tool}` is not installed (apt-get install openssh-client)")
    small, _ = run_on_lab(args.nodes, args, with_loop=True)
    large, notes = run_on_lab(args.large, args, with_loop=False, floor=args.nodes)
    report(small, large, notes, args.large)


if __name__ == "__main__":
    main()
