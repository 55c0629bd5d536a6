"""Trust rollout of a new CA: certrotate vs Ansible vs the manual `scp` + `ssh` loop, on one lab.

What an operator without certrotate would run to put the combined CA bundle on every node
and reload it, side by side with certrotate's trust phase (`start ca` + `advance`):

- the documented loop: `scp` the bundle, `ssh` the reload command, node after node;
- Ansible: `ansible-core` (installed by this bench into a venv of its own under its temp
  dir), an INI inventory of the lab, one play with `copy` (`backup: true`) and `shell` for
  the reload, forks = the node count, OpenSSH with ControlMaster/ControlPersist and
  pipelining (a fresh control directory per round: every round logs in anew, as one run of
  a playbook does);
- certrotate, which also backs up, verifies each upload, and proves with TLS handshakes on
  every node that it trusts the new CA, still trusts the old one and still serves its leaf.

Neither peer verifies anything beyond exit statuses; the bench checks afterwards that each
left the bundle on every node (untimed) and puts the nodes back before the next contender.
For certrotate it also reports its own CPU seconds and peak RSS (the child processes'
getrusage). A scale run follows on a lab of light nodes (`start_lab(postgres=False)`: one
sshd and one small TLS listener per node, no PostgreSQL) of --scale nodes: certrotate alone.

    .venv/bin/python bench/bench_peers.py [--sizes 12 48] [--scale 200] [--repeat 3]

Run it by hand on a quiet machine; the lab shares its cores with the contenders.
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
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_trust_rollout import (  # noqa: E402 - the bench directory is not a package
    Sample,
    Timed,
    check_loop_result,
    certrotate_command,
    manual_loop,
    openssh_options,
    restore_ca_files,
)

from cryptography import x509  # noqa: E402

from core import pki  # noqa: E402
from core.config import state as state_mod  # noqa: E402
from core.lab import Lab, start_lab  # noqa: E402
from core.pki import bundle  # noqa: E402
from core.pki.certs_dir import CA_CERT  # noqa: E402

ANSIBLE_CORE = "ansible-core==2.19.14"  # the newest that runs on Python 3.11
RUN_TIMEOUT = 900.0
TARGETS = {12: 0.15, 48: 0.10}  # certrotate / Ansible
CPU_TARGET_MS = 30.0
RSS_TARGET_MB = 150.0


# -- child processes --------------------------------------------------------------------------


@dataclass
class Child:
    seconds: float
    cpu_s: float
    max_rss_mb: float
    stdout: str
    stderr: str
    returncode: int


def child_env() -> dict[str, str]:
    """As an installed certrotate runs: with its bytecode cache (a session may have turned it off)."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def run_child(argv: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Child:
    """Run one process; its own CPU time and peak RSS from wait4 (not the bench's)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=out, stderr=err, env=env or child_env(), cwd=cwd)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024,
                     out.read().decode(errors="replace"), err.read().decode(errors="replace"), process.returncode)


# -- certrotate -------------------------------------------------------------------------------


@dataclass
class Rollout:
    sample: Sample
    cpu_s: float
    max_rss_mb: float
    verified_nodes: int


def certrotate_rollout(lab: Lab, quiet_wait: float) -> Rollout:
    cli = certrotate_command()
    journal_before = len(state_mod.load(lab.state_path).journal)
    children = []
    with Timed(quiet_wait) as timed:
        for args in (["start", "ca"], ["advance"]):
            child = run_child([*cli, *args, "--state", str(lab.state_path)])
            if child.returncode != 0:
                raise SystemExit(f"certrotate {' '.join(args)} exited {child.returncode}:\n{child.stdout}{child.stderr}")
            children.append(child)
    return Rollout(timed.sample, sum(c.cpu_s for c in children), max(c.max_rss_mb for c in children),
                   verified_nodes(lab, journal_before))


def verified_nodes(lab: Lab, journal_before: int) -> int:
    """Nodes for which this run's record says what certrotate proved: the trust step done, a client certificate
    of the new CA and one of the old CA accepted (journal), the leaf it serves recorded and equal to its
    node.crt; and (read by the bench) the combined bundle on disk."""
    state = state_mod.load(lab.state_path)
    if state.phase != "wait":
        raise SystemExit(f"after advance the rotation is in phase {state.phase}, not wait")
    rotation = state.rotation
    new_ca = rotation["new_ca"]["fingerprint"][:16]
    old_cas = [fp[:16] for fp in rotation.get("old_ca_fingerprints", [])]
    wanted = rotation.get("combined_bundle_sha256")
    proofs: dict[str, set[str]] = {}
    for entry in state.journal[journal_before:]:
        if entry.get("action") != "trust: verify":
            continue
        detail, host = entry.get("detail", ""), entry.get("host", "")
        if f"trusts CA {new_ca}" in detail:
            proofs.setdefault(host, set()).add("new")
        elif any(f"trusts CA {fp}" in detail for fp in old_cas):
            proofs.setdefault(host, set()).add("old")
    count = 0
    for node in lab.nodes:
        record = rotation.get("nodes", {}).get(node.name, {})
        node_crt = x509.load_pem_x509_certificate((node.certs_dir / "node.crt").read_bytes())
        on_disk = hashlib.sha256((node.certs_dir / CA_CERT).read_bytes()).hexdigest() == wanted
        if (record.get("trust") == "done" and record.get("served_before") == pki.sha256_fingerprint(node_crt)
                and proofs.get(node.name, set()) >= {"new", "old"} and on_disk):
            count += 1
    return count


def roll_back(lab: Lab) -> None:
    child = run_child([*certrotate_command(), "rollback", "--yes", "--state", str(lab.state_path)])
    if child.returncode != 0:
        raise SystemExit(f"certrotate rollback exited {child.returncode}:\n{child.stdout}{child.stderr}")
    time.sleep(1.1)  # rotation ids are stamped to the second


# -- Ansible ----------------------------------------------------------------------------------


def install_ansible(workdir: Path) -> Path:
    venv = workdir / "ansible-venv"
    if not (venv / "bin" / "ansible-playbook").exists():
        print(f"installing {ANSIBLE_CORE} into {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", ANSIBLE_CORE], check=True)
    return venv / "bin" / "ansible-playbook"


PLAYBOOK = """\
- name: Put the combined CA bundle on every node and reload
  hosts: nodes
  gather_facts: false
  tasks:
    - name: ca.crt
      ansible.builtin.copy:
        src: {bundle}
        dest: "{{{{ certs_dir }}}}/ca.crt"
        backup: true
        owner: "{{{{ node_owner }}}}"
        mode: "0644"
    - name: reload
      ansible.builtin.shell: "{{{{ reload_cmd }}}}"
"""


def ansible_files(lab: Lab, workdir: Path, combined: Path) -> tuple[Path, Path]:
    """An INI inventory of the lab, ansible.cfg (forks = nodes, ControlPersist, pipelining) and the play."""
    lines = ["[nodes]"]
    for node in lab.nodes:
        lines.append(f'{node.name} ansible_host={node.address} ansible_port={node.ssh_port} '
                     f'certs_dir={node.certs_dir} reload_cmd="{node.reload_command}"')
    lines += ["", "[nodes:vars]", f"ansible_user={lab.ssh_user}", f"ansible_ssh_private_key_file={lab.operator_key}",
              f"ansible_python_interpreter={shutil.which('python3') or '/usr/bin/python3'}",
              f"node_owner={lab.run_as.name}"]
    inventory = workdir / "inventory.ini"
    inventory.write_text("\n".join(lines) + "\n")
    (workdir / "play.yml").write_text(PLAYBOOK.format(bundle=combined))
    config = workdir / "ansible.cfg"
    config.write_text(textwrap.dedent(f"""\
        [defaults]
        inventory = {inventory}
        forks = {len(lab.nodes)}
        host_key_checking = True
        gathering = explicit
        retry_files_enabled = False
        [ssh_connection]
        pipelining = True
        ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={lab.known_hosts} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes
        """))
    return config, workdir / "play.yml"


def ansible_rollout(playbook_bin: Path, config: Path, play: Path, workdir: Path, round_number: int,
                    quiet_wait: float) -> Sample:
    control = workdir / f"cp{round_number}"  # a fresh ControlPath dir: this round opens its own masters
    control.mkdir()
    env = child_env() | {"ANSIBLE_CONFIG": str(config), "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
                         "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"), "ANSIBLE_HOME": str(workdir / "home")}
    with Timed(quiet_wait) as timed:
        child = run_child([str(playbook_bin), str(play)], env=env, cwd=workdir)
    if child.returncode != 0:
        raise SystemExit(f"ansible-playbook exited {child.returncode}:\n{child.stdout[-3000:]}{child.stderr[-3000:]}")
    for master in control.iterdir():  # close this round's masters (untimed)
        subprocess.run(["ssh", "-O", "exit", "-o", f"ControlPath={master}", "x"], capture_output=True)
    return timed.sample


def remove_ansible_backups(lab: Lab) -> None:
    for node in lab.nodes:
        for backup in node.certs_dir.glob(f"{CA_CERT}.*~"):
            backup.unlink()


# -- one lab ----------------------------------------------------------------------------------


@dataclass
class Result:
    nodes: int
    loop: list[Sample] = field(default_factory=list)
    ansible: list[Sample] = field(default_factory=list)
    certrotate: list[Rollout] = field(default_factory=list)


def bench_lab(lab: Lab, workdir: Path, args: argparse.Namespace, playbook_bin: Path | None) -> Result:
    result = Result(len(lab.nodes))
    originals = {n.name: (n.certs_dir / CA_CERT).read_bytes() for n in lab.nodes}
    peer_ca = pki.issue_ca(key_type=state_mod.load(lab.state_path).inventory.cluster.key_type,
                           common_name="Cockroach CA (peers)")
    combined = bundle.combine(peer_ca.cert_pem, (lab.local_certs_dir / CA_CERT).read_bytes())
    combined_path = workdir / "combined-ca.crt"
    combined_path.write_bytes(combined)
    if playbook_bin is not None:
        config, play = ansible_files(lab, workdir, combined_path)
    for round_number in range(1, args.repeat + 1):
        if playbook_bin is not None:
            result.loop.append(manual_loop(lab, combined_path, args.quiet_wait))
            check_loop_result(lab, combined)
            restore_ca_files(lab.nodes, originals)
            result.ansible.append(ansible_rollout(playbook_bin, config, play, workdir, round_number, args.quiet_wait))
            check_loop_result(lab, combined)
            restore_ca_files(lab.nodes, originals)
            remove_ansible_backups(lab)
        rollout = certrotate_rollout(lab, args.quiet_wait)
        result.certrotate.append(rollout)
        roll_back(lab)
        peers = (f"loop {result.loop[-1].seconds:.2f} s, ansible {result.ansible[-1].seconds:.2f} s, "
                 if playbook_bin is not None else "")
        print(f"  {len(lab.nodes)} nodes, round {round_number}: {peers}certrotate {rollout.sample.seconds:.2f} s "
              f"(cpu {rollout.cpu_s:.2f} s, peak rss {rollout.max_rss_mb:.0f} MB, verified {rollout.verified_nodes} "
              f"nodes; other work on the machine {rollout.sample.other_cpu_s:.1f} cpu-s)", flush=True)
    return result


def median_s(samples: list[Sample]) -> float:
    return statistics.median(s.seconds for s in samples)


def report(results: list[Result], scale: Result | None) -> None:
    load = os.getloadavg()
    print()
    print(f"Trust rollout (start ca + advance for certrotate), {platform.node()}, {os.cpu_count()} cores, lab and "
          f"contenders on the same cores; load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          "medians of the rounds")
    print()
    print("| nodes | scp+ssh loop | Ansible (forks = nodes) | certrotate | certrotate CPU | CPU per node | peak RSS |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        ours = median_s([r.sample for r in result.certrotate])
        cpu = statistics.median(r.cpu_s for r in result.certrotate)
        rss = max(r.max_rss_mb for r in result.certrotate)
        ansible = median_s(result.ansible)
        print(f"| {result.nodes} | {median_s(result.loop):.2f} s | {ansible:.2f} s | {ours:.2f} s "
              f"({ours / ansible:.2f}× Ansible) | {cpu:.2f} s | {1000 * cpu / result.nodes:.0f} ms | {rss:.0f} MB |")
    if scale is not None:
        ours = median_s([r.sample for r in scale.certrotate])
        cpu = statistics.median(r.cpu_s for r in scale.certrotate)
        rss = max(r.max_rss_mb for r in scale.certrotate)
        print(f"| {scale.nodes} (light nodes) | – | – | {ours:.2f} s | {cpu:.2f} s | {1000 * cpu / scale.nodes:.0f} ms "
              f"| {rss:.0f} MB |")
    print()
    for result in results:
        target = TARGETS.get(result.nodes)
        ours = median_s([r.sample for r in result.certrotate])
        ratio = ours / median_s(result.ansible)
        cpu_ms = 1000 * statistics.median(r.cpu_s for r in result.certrotate) / result.nodes
        verified = min(r.verified_nodes for r in result.certrotate)
        if target is not None:
            print(f"{result.nodes} nodes: {ratio:.2f}× Ansible (target <= {target}×: "
                  f"{'met' if ratio <= target else 'MISSED'}); verified {verified} of {result.nodes} nodes in every round")
        if result.nodes == 48:
            print(f"48 nodes: {cpu_ms:.0f} ms CPU per node (target <= {CPU_TARGET_MS:.0f}: "
                  f"{'met' if cpu_ms <= CPU_TARGET_MS else 'MISSED'})")
    if scale is not None:
        cpu_ms = 1000 * statistics.median(r.cpu_s for r in scale.certrotate) / scale.nodes
        rss = max(r.max_rss_mb for r in scale.certrotate)
        at_48 = next((r for r in results if r.nodes == 48), None)
        flat = ""
        if at_48 is not None:
            ms_48 = 1000 * statistics.median(r.cpu_s for r in at_48.certrotate) / 48
            flat = f" vs {ms_48:.0f} ms at 48 ({'met' if cpu_ms <= ms_48 else 'MISSED'}: no higher)"
        print(f"{scale.nodes} light nodes: {cpu_ms:.0f} ms CPU per node{flat}; peak RSS {rss:.0f} MB "
              f"(target <= {RSS_TARGET_MB:.0f}: {'met' if rss <= RSS_TARGET_MB else 'MISSED'}); verified "
              f"{min(r.verified_nodes for r in scale.certrotate)} of {scale.nodes} nodes in every round")
    print()
    print("What each verified: the loop and Ansible nothing (exit statuses); certrotate, on every node counted "
          "above, a TLS handshake with a client certificate of the new CA and one of the old CA, each showing the "
          "leaf the node serves (recorded, and equal to its node.crt), after a backup and a read-back of the upload.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[12, 48], help="labs with PostgreSQL nodes")
    parser.add_argument("--scale", type=int, default=200, help="nodes of the light scale lab (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds on each lab")
    parser.add_argument("--quiet-wait", type=float, default=30.0,
                        help="seconds to wait at most for a calm machine before each timed section")
    parser.add_argument("--ansible-venv", type=Path, help="reuse an ansible-core venv instead of installing one")
    args = parser.parse_args()
    for tool in ("scp", "ssh"):
        if shutil.which(tool) is None:
            raise SystemExit(f"the OpenSSH client `{tool}` is not installed (apt-get install openssh-client)")
    subprocess.run([*certrotate_command(), "--help"], env=child_env(), capture_output=True)  # write its bytecode
    with tempfile.TemporaryDirectory(prefix="certrotate-bench-peers-") as tmp:
        workdir = Path(tmp)
        playbook_bin = (args.ansible_venv / "bin" / "ansible-playbook") if args.ansible_venv else install_ansible(workdir)
        results = []
        for size in args.sizes:
            began = time.perf_counter()
            with start_lab(nodes=size) as lab:
                print(f"lab of {size} nodes up in {time.perf_counter() - began:.1f} s", flush=True)
                lab_dir = workdir / f"lab{size}"
                lab_dir.mkdir()
                results.append(bench_lab(lab, lab_dir, args, playbook_bin))
        scale = None
        if args.scale:
            began = time.perf_counter()
            with start_lab(nodes=args.scale, postgres=False) as lab:
                print(f"light lab of {args.scale} nodes up in {time.perf_counter() - began:.1f} s", flush=True)
                lab_dir = workdir / f"light{args.scale}"
                lab_dir.mkdir()
                scale = bench_lab(lab, lab_dir, args, None)
    report(results, scale)


if __name__ == "__main__":
    main()
