"""A throw-away, real one-node SLURM cluster for the test suite.

This module is a helper, not a test file. Typical use::

    import pytest
    from slurm_cluster import slurm_cluster

    @pytest.fixture(scope="module")
    def slurm():
        yield from slurm_cluster()

    def test_something(slurm):
        out = subprocess.run(["sbatch", "-p", slurm.partition_low, ...], env=slurm.env, ...)
        slurm.wait_for(lambda: slurm.job_state(job_id) == "COMPLETED", timeout=30)

What it starts (all under a private temp dir, on free ports, so it never collides with a
slurm/munge already running on the machine, e.g. left over by a crashed test):

* ``munged`` (as user ``munge``) with its own key and socket,
* ``slurmctld`` and ``slurmd`` (as root) reading a generated ``slurm.conf``
  (``SLURM_CONF`` points at it in ``cluster.env``),
* two partitions: ``partition_low`` (default, PriorityTier=1, GraceTime=10, preemptable by
  REQUEUE) and ``partition_high`` (PriorityTier=10, PreemptMode=OFF),
* a ``sacct`` stand-in on ``PATH`` (there is no accounting daemon) answering submitit's
  ``sacct -o JobID,State,NodeList --parsable2 -j ID...`` from ``squeue -t all``.

Daemons run in the foreground as children of the test process with a parent-death signal, so
they die with it even if it is killed; ``stop()`` cancels jobs, waits for the queue to drain and
terminates slurmd, slurmctld and munged by their pid files. Directories of earlier instances
whose owning process is gone are cleaned up on ``start()``.

If slurm is not installed it is installed with apt-get (``apt-get update`` +
``apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge``);
``slurm_cluster()`` calls ``pytest.skip`` when that is impossible (no apt-get, not root).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, TypeVar

__all__ = ["LocalSlurm", "SlurmUnavailable", "ensure_slurm_installed", "slurm_cluster"]

T = TypeVar("T")

_SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
_APT_PACKAGES = ["slurmctld", "slurmd", "slurm-client", "munge"]
_DIR_PREFIX = "wildrobot-slurm-"
_ACTIVE_STATES = ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED",
                  "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
                  "RESV_DEL_HOLD", "SPECIAL_EXIT", "PREEMPTED")


class SlurmUnavailable(RuntimeError):
    """Slurm cannot be installed or started here (the reason is the message)."""


def _which(name: str) -> Optional[str]:
    path = os.environ.get("PATH", "") + os.pathsep + os.pathsep.join(_SBIN_DIRS)
    return shutil.which(name, path=path)


def _missing_binaries() -> List[str]:
    needed = ["slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "srun", "munged"]
    return [b for b in needed if _which(b) is None]


def ensure_slurm_installed() -> None:
    """Install slurm + munge with apt-get if missing. Raises SlurmUnavailable when that is
    impossible here (no apt-get, not root), RuntimeError when apt-get fails."""
    missing = _missing_binaries()
    if not missing:
        return
    apt = _which("apt-get")
    if apt is None:
        raise SlurmUnavailable(f"no apt-get: cannot install slurm (missing: {', '.join(missing)})")
    if os.geteuid() != 0:
        raise SlurmUnavailable(f"not root: cannot apt-get install slurm (missing: {', '.join(missing)})")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in ([apt, "update", "-qq"],
                [apt, "install", "-y", "-qq", "--no-install-recommends", *_APT_PACKAGES]):
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=900)
        if proc.returncode != 0:  # a real failure, not a reason to skip
            raise RuntimeError(f"{' '.join(cmd)} failed (rc={proc.returncode}):\n{proc.stdout[-3000:]}")
    missing = _missing_binaries()
    if missing:
        raise RuntimeError(f"still missing after apt-get install: {', '.join(missing)}")


def _free_ports(n: int) -> List[int]:
    socks, ports = [], []
    try:
        while len(ports) < n:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("", 0))
            socks.append(s)
            if s.getsockname()[1] not in ports:
                ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _read_pid(path: Path) -> Optional[int]:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _proc_environ(pid: int) -> Dict[str, str]:
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    out = {}
    for item in raw.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep:
            out[k.decode(errors="replace")] = v.decode(errors="replace")
    return out


def _proc_comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _set_pdeathsig() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except Exception:  # pragma: no cover - best effort
        pass


_SACCT_STANDIN = r'''#!{python}
"""sacct stand-in for a cluster without accounting (written by tests/slurm_cluster.py).

Understands what submitit asks: sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID ...]
(plus -n/--noheader, --format=, -j a,b). Answers from `squeue -t all` (jobs stay visible there
for MinJobAge seconds after they end).
"""
import subprocess, sys

args = sys.argv[1:]
fields, ids, header, sep = ["JobID", "JobName", "State", "ExitCode"], [], True, "|"
i = 0
while i < len(args):
    a = args[i]
    val = None
    if "=" in a and a.startswith("--"):
        a, val = a.split("=", 1)
    def take():
        global i
        if val is not None:
            return val
        i += 1
        return args[i]
    if a in ("-o", "--format"):
        fields = [f.split("%")[0] for f in take().split(",") if f]
    elif a in ("-j", "--jobs"):
        ids += [j for j in take().split(",") if j]
    elif a in ("-n", "--noheader"):
        header = False
    elif a in ("-p", "--parsable", "-P", "--parsable2"):
        pass
    elif a in ("-S", "--starttime", "-E", "--endtime", "-u", "--user", "-s", "--state", "-M", "--clusters"):
        take()
    i += 1

fmt = "%i|%F|%A|%T|%N|%j|%P|%r"
proc = subprocess.run(["squeue", "-h", "-t", "all", "-o", fmt], stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
if proc.returncode != 0:
    sys.stderr.write(proc.stderr)
    sys.exit(proc.returncode)
exit_codes = {{}}
if "ExitCode" in fields:  # not in squeue: ask scontrol (one call for all jobs)
    sc = subprocess.run(["scontrol", "show", "job", "-o"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                        text=True)
    for rec_line in sc.stdout.splitlines():
        kv = dict(x.split("=", 1) for x in rec_line.split() if "=" in x)
        key = kv.get("JobId", "")
        if kv.get("ArrayTaskId") and kv.get("ArrayJobId"):
            key = kv["ArrayJobId"] + "_" + kv["ArrayTaskId"]
        exit_codes[key] = kv.get("ExitCode", "")
rows = []
for line in proc.stdout.splitlines():
    parts = line.split("|")
    if len(parts) < 8:
        continue
    jobid, base, raw, state, nodes, name, part, reason = parts[:8]
    if ids and not any(q in (jobid, base, raw) or jobid.startswith(q + "_") for q in ids):
        continue
    state = "CANCELLED" if state.startswith("CANCELLED") else state
    rec = {{"JobID": jobid, "JobIDRaw": raw, "State": state, "NodeList": nodes or "None assigned",
           "JobName": name, "Partition": part, "Reason": reason, "ExitCode": exit_codes.get(jobid, "")}}
    rows.append(sep.join(rec.get(f, "") for f in fields))
out = []
if header:
    out.append(sep.join(fields))
out += rows
sys.stdout.write("".join(l + "\n" for l in out))
'''


class LocalSlurm:
    """A real one-node slurm cluster in a private temp dir.

    Use as a context manager (``with LocalSlurm() as cluster:``) or call ``start()``/``stop()``.
    Inside ``with`` (or after ``start(export_env=True)``) ``os.environ`` of this process gets
    ``SLURM_CONF`` and the ``sacct`` stand-in on ``PATH`` (restored by ``stop()``), so in-process
    clients such as submitit see the cluster. Pass ``cluster.env`` to subprocesses.
    """

    partition_low = "low"
    partition_high = "high"

    def __init__(self, grace_time_s: int = 10, kill_wait_s: int = 5, base_dir: Optional[str] = None,
                 start_timeout_s: float = 30.0, preempt_send_user_signal: bool = True) -> None:
        """grace_time_s: GraceTime of the low partition (how long a preempted job may run on);
        kill_wait_s: KillWait (SIGTERM to SIGKILL); preempt_send_user_signal: send the job's
        ``--signal`` (e.g. USR2) at preemption (SlurmctldParameters=preempt_send_user_signal);
        without it a preempted job only gets SIGCONT+SIGTERM."""
        self.preempt_send_user_signal = preempt_send_user_signal
        self.grace_time_s = grace_time_s
        self.kill_wait_s = kill_wait_s
        self.start_timeout_s = start_timeout_s
        self._base_parent = base_dir
        self.dir: Optional[Path] = None
        self.env: Dict[str, str] = {}
        self.node_name = ""
        self.cpus = 0
        self.ctld_port = self.slurmd_port = 0
        self._procs: Dict[str, subprocess.Popen] = {}
        self._saved_environ: Optional[Dict[str, Optional[str]]] = None
        self._started = False

    # ------------------------------------------------------------------ paths
    @property
    def conf_path(self) -> Path:
        return self._p("slurm.conf")

    @property
    def bin_dir(self) -> Path:
        return self._p("bin")

    def _p(self, *parts: str) -> Path:
        assert self.dir is not None, "cluster not started"
        return self.dir.joinpath(*parts)

    def _pidfile(self, daemon: str) -> Path:
        return self._p("munge", "munged.pid") if daemon == "munged" else self._p(f"{daemon}.pid")

    def logs(self, tail: int = 30) -> str:
        """Tail of the daemon logs (for error messages)."""
        if self.dir is None:
            return ""
        out = []
        for name in ("munge/munged.log", "slurmctld.log", "slurmd.log", "munged.out", "slurmctld.out",
                     "slurmd.out"):
            p = self._p(name)
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()[-tail:]
                out.append(f"--- {name}\n" + "\n".join(lines))
        return "\n".join(out)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "LocalSlurm":
        self.start(export_env=True)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, export_env: bool = False) -> "LocalSlurm":
        if self._started:
            return self
        ensure_slurm_installed()
        if os.geteuid() != 0:
            raise SlurmUnavailable("not root: this harness runs slurmd/slurmctld as root")
        try:
            pwd.getpwnam("munge")
        except KeyError as e:
            raise SlurmUnavailable("no 'munge' user (is the munge package installed?)") from e
        _cleanup_stale_instances(self._base_parent)
        self.dir = Path(tempfile.mkdtemp(prefix=_DIR_PREFIX, dir=self._base_parent))
        self._started = True
        try:
            self._start_impl()
        except BaseException:
            self.stop()
            raise
        if export_env:
            self._export_environ()
        return self

    def _start_impl(self) -> None:
        assert self.dir is not None
        os.chmod(self.dir, 0o755)
        (self.dir / "owner.pid").write_text(f"{os.getpid()}\n")
        for sub in ("state", "spool", "bin", "jobs"):
            self._p(sub).mkdir()
        os.chmod(self._p("jobs"), 0o777)

        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SUBMITIT_"))}
        self.env["SLURM_CONF"] = str(self.conf_path)
        self.env["PATH"] = os.pathsep.join(
            [str(self.bin_dir)] + [d for d in self.env.get("PATH", "").split(os.pathsep) if d]
            + [d for d in _SBIN_DIRS if d not in self.env.get("PATH", "").split(os.pathsep)])

        sacct = self.bin_dir / "sacct"
        sacct.write_text(_SACCT_STANDIN.format(python=sys.executable))
        sacct.chmod(0o755)

        self._start_munged()
        self._write_conf()
        self._spawn("slurmctld", [_which("slurmctld"), "-D", "-c", "-f", str(self.conf_path)])
        self.wait_for(lambda: self._run(["scontrol", "ping"], check=False).stdout.find("UP") >= 0,
                      timeout=self.start_timeout_s, desc="slurmctld to answer ping",
                      check_procs=("munged", "slurmctld"))
        self._spawn("slurmd", [_which("slurmd"), "-D", "-N", self.node_name, "-f", str(self.conf_path)])
        self.wait_for(lambda: self._node_state() in ("idle", "mixed", "allocated"),
                      timeout=self.start_timeout_s, desc="node to become idle",
                      check_procs=("munged", "slurmctld", "slurmd"))

    def _start_munged(self) -> None:
        mw = pwd.getpwnam("munge")
        mdir = self._p("munge")
        mdir.mkdir()
        os.chown(mdir, mw.pw_uid, mw.pw_gid)
        os.chmod(mdir, 0o755)
        key = mdir / "munge.key"
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
        os.chown(key, mw.pw_uid, mw.pw_gid)
        os.chmod(key, 0o600)
        self.munge_socket = mdir / "munge.socket"
        self._spawn("munged", [_which("munged"), "-F", f"--socket={self.munge_socket}",
                               f"--key-file={key}", f"--pid-file={mdir / 'munged.pid'}",
                               f"--log-file={mdir / 'munged.log'}", f"--seed-file={mdir / 'munged.seed'}",
                               "--num-threads=2"],
                    user=mw.pw_uid, group=mw.pw_gid)
        self.wait_for(lambda: self.munge_socket.exists(), timeout=self.start_timeout_s,
                      desc="munged socket", check_procs=("munged",))

    def _write_conf(self) -> None:
        detected = subprocess.run([_which("slurmd"), "-C"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, check=True).stdout.splitlines()[0]
        fields = dict(kv.split("=", 1) for kv in detected.split() if "=" in kv)
        fields.pop("UpTime", None)
        self.node_name = fields.pop("NodeName")
        self.cpus = int(fields.get("CPUs", "1"))
        node_line = " ".join([f"NodeName={self.node_name}", "NodeAddr=127.0.0.1"]
                             + [f"{k}={v}" for k, v in fields.items()] + ["State=UNKNOWN"])
        self.ctld_port, self.slurmd_port = _free_ports(2)
        d = self.dir
        conf = f"""\
# generated by tests/slurm_cluster.py
ClusterName=wr{os.getpid()}
SlurmctldHost={self.node_name}(127.0.0.1)
SlurmctldPort={self.ctld_port}
SlurmdPort={self.slurmd_port}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={self.munge_socket},cred_expire=10
SlurmUser=root
SlurmdUser=root
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=2,sched_interval=5
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait={self.kill_wait_s}
InactiveLimit=0
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
{"SlurmctldParameters=preempt_send_user_signal" if self.preempt_send_user_signal else ""}
{node_line}
PartitionName={self.partition_low} Nodes=ALL Default=YES PriorityTier=1 GraceTime={self.grace_time_s} MaxTime=INFINITE State=UP
PartitionName={self.partition_high} Nodes=ALL PriorityTier=10 PreemptMode=OFF MaxTime=INFINITE State=UP
"""
        self.conf_path.write_text(conf)

    def _spawn(self, name: str, cmd: List[Optional[str]], user: Optional[int] = None,
               group: Optional[int] = None) -> None:
        if cmd[0] is None:
            raise RuntimeError(f"{name} not found")
        out = open(self._p(f"{name}.out"), "wb")
        try:
            self._procs[name] = subprocess.Popen(
                [str(c) for c in cmd], env=self.env, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, cwd=str(self.dir), start_new_session=True,
                user=user, group=group, extra_groups=[] if user is not None else None,
                preexec_fn=_set_pdeathsig)
        finally:
            out.close()

    def _export_environ(self) -> None:
        self._saved_environ = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
        os.environ["SLURM_CONF"] = self.env["SLURM_CONF"]
        os.environ["PATH"] = self.env["PATH"]

    def _restore_environ(self) -> None:
        if self._saved_environ is None:
            return
        for k, v in self._saved_environ.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        self._saved_environ = None

    def stop(self) -> None:
        """Cancel jobs, wait for the queue to drain, TERM slurmd, slurmctld, munged. Idempotent."""
        if not self._started:
            return
        self._started = False
        try:
            if "slurmctld" in self._procs and self._procs["slurmctld"].poll() is None:
                try:
                    ids = [r["JOBID"] for r in self.squeue() if r["STATE"] in _ACTIVE_STATES]
                    if ids:
                        self._run(["scancel", *ids], check=False)
                        self.wait_for(lambda: not any(r["STATE"] in _ACTIVE_STATES for r in self.squeue()),
                                      timeout=self.kill_wait_s + 20, desc="queue to drain")
                except Exception:
                    pass
            for name in ("slurmd", "slurmctld", "munged"):
                self._terminate(name)
            self._kill_leftover_job_processes()
        finally:
            self._restore_environ()
            if self.dir is not None and not os.environ.get("WILDROBOT_KEEP_SLURM_DIR"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def _terminate(self, name: str) -> None:
        proc = self._procs.get(name)
        pids = {p for p in (_read_pid(self._pidfile(name)) if self.dir else None,
                            proc.pid if proc else None) if p}
        for pid in pids:
            if proc is not None and pid != proc.pid and not _pid_alive(pid):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if proc is not None:
                proc.poll()
            if not any(_pid_alive(p) for p in pids):
                break
            time.sleep(0.05)
        for pid in pids:
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def _kill_leftover_job_processes(self) -> None:
        _kill_job_processes(str(self.conf_path))

    # ------------------------------------------------------------------ helpers
    def _run(self, cmd: List[str], check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, check=check, timeout=timeout)

    def run(self, *cmd: str, check: bool = True) -> str:
        """Run a slurm client command against this cluster, return stdout."""
        try:
            return self._run(list(cmd), check=check).stdout
        except subprocess.CalledProcessError as e:
            raise RuntimeError(f"{' '.join(cmd)} failed rc={e.returncode}: {e.stderr}") from e

    def sbatch(self, *args: str) -> str:
        """Submit with sbatch (``--parsable``), return the job id."""
        return self.run("sbatch", "--parsable", *args).strip().split(";")[0]

    def wait_for(self, predicate: Callable[[], T], timeout: float, interval: float = 0.2, desc: str = "",
                 check_procs: tuple = ()) -> T:
        """Poll ``predicate`` until it returns a truthy value (returned) or ``timeout`` s pass
        (TimeoutError with the daemon logs). ``check_procs``: daemons that must stay alive."""
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            for name in check_procs:
                proc = self._procs.get(name)
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with rc={proc.returncode} while waiting for "
                                       f"{desc or predicate}\n{self.logs()}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {desc or predicate}\n"
                                   f"squeue: {self._safe_squeue()}\n{self.logs()}")
            time.sleep(interval)

    def _safe_squeue(self):
        try:
            return self.squeue()
        except Exception as e:  # pragma: no cover
            return f"<{e}>"

    def _node_state(self) -> str:
        r = self._run(["sinfo", "-h", "-N", "-o", "%T"], check=False)
        return r.stdout.strip().split("\n")[0].rstrip("*~#!%$@^-") if r.returncode == 0 else ""

    def squeue(self) -> List[Dict[str, str]]:
        """All jobs the controller knows (``squeue -t all``), as dicts with keys
        JOBID, ARRAY_JOB_ID, STATE, REASON, PARTITION, NAME, NODELIST, RESTARTS."""
        fmt = "%i|%F|%T|%r|%P|%j|%N"
        out = self.run("squeue", "-h", "-t", "all", "-o", fmt)
        keys = ["JOBID", "ARRAY_JOB_ID", "STATE", "REASON", "PARTITION", "NAME", "NODELIST"]
        return [dict(zip(keys, line.split("|"))) for line in out.splitlines() if line.strip()]

    def job_info(self, job_id: str) -> Dict[str, str]:
        """``scontrol show job -o ID`` as a dict ({} if unknown). For an array job id, the first record."""
        r = self._run(["scontrol", "show", "job", "-o", str(job_id)], check=False)
        if r.returncode != 0 or not r.stdout.strip():
            return {}
        line = r.stdout.strip().splitlines()[0]
        return dict(re.findall(r"(\w+(?:/\w+)?)=(\S*)", line))

    def job_state(self, job_id: str) -> Optional[str]:
        """JobState of a job (e.g. PENDING, RUNNING, COMPLETED), None if unknown."""
        return self.job_info(job_id).get("JobState")

    def restarts(self, job_id: str) -> int:
        return int(self.job_info(job_id).get("Restarts", "0") or 0)


def _kill_job_processes(conf: str) -> None:
    """SIGKILL slurmstepd / job processes of the cluster whose slurm.conf is ``conf`` (found by
    ``SLURM_CONF`` in their environment; never this process)."""
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        env = _proc_environ(pid)
        if env.get("SLURM_CONF") != conf:
            continue
        if "SLURM_JOB_ID" in env or _proc_comm(pid).startswith("slurmstepd"):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


def _cleanup_stale_instances(parent: Optional[str]) -> None:
    """Stop daemons and remove dirs of earlier instances whose owning process is dead."""
    base = Path(parent or tempfile.gettempdir())
    for d in base.glob(_DIR_PREFIX + "*"):
        owner = _read_pid(d / "owner.pid")
        if owner is not None and _pid_alive(owner):
            continue
        if owner is None:  # maybe being created right now by another process: leave young ones
            with contextlib.suppress(OSError):
                if time.time() - d.stat().st_mtime < 120:
                    continue
        for pidfile in (d / "slurmd.pid", d / "slurmctld.pid", d / "munge" / "munged.pid"):
            pid = _read_pid(pidfile)
            if pid and _pid_alive(pid) and str(d) in " ".join(_proc_environ(pid).values()) + _cmdline(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        _kill_job_processes(str(d / "slurm.conf"))
        shutil.rmtree(d, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def slurm_cluster(**kwargs) -> Iterator[LocalSlurm]:
    """Pytest-fixture body: ``yield from slurm_cluster()``. Skips when slurm is unavailable (no
    apt-get, not root), unless ``WILDROBOT_REQUIRE_SLURM`` is set (CI, where apt-get is)."""
    import pytest

    try:
        ensure_slurm_installed()
        if os.geteuid() != 0:
            raise SlurmUnavailable("not root: this harness runs slurmd/slurmctld as root")
    except SlurmUnavailable as e:
        if os.environ.get("WILDROBOT_REQUIRE_SLURM"):  # CI: a machine that should have it must not skip
            raise
        pytest.skip(str(e))
    with LocalSlurm(**kwargs) as cluster:
        yield cluster
