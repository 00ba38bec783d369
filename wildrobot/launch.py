"""Start one run as several processes on this machine, as ``srun`` does on a cluster:

    uv run python -m wildrobot.launch --processes 2 run.py trainer.devices=all env.sim.backend=mjx

Each process is ``python <command>`` with ``WILDROBOT_COORDINATOR``, ``WILDROBOT_NUM_PROCESSES``
and ``WILDROBOT_PROCESS_ID`` set; ``jax_setup.start_distributed`` reads them and joins the
processes into one JAX run (CPU collectives over loopback with gloo), so ``trainer.devices=all``
shards the env batch over every process's devices. All processes write one run directory: when
the command names none (``hydra.run.dir=...``), the launcher picks it once for all. A signal sent
to the launcher (SIGINT, SIGTERM, USR2) goes to every process; the exit code is the first
non-zero one.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse(argv: Optional[list[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wildrobot.launch", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--processes", "-n", type=int, default=2, help="how many processes (default 2)")
    parser.add_argument("--port", type=int, default=0, help="the coordinator's port on 127.0.0.1 (default: a free one)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="run.py and its overrides")
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f"--processes {args.processes}: give at least 1")
    if not args.command:
        parser.error("no command: e.g. python -m wildrobot.launch -n 2 run.py trainer.devices=all env.sim.backend=mjx")
    return args


def with_run_dir(command: list[str]) -> list[str]:
    """The command with one ``hydra.run.dir`` (a sweep: ``hydra.sweep.dir``) for every process
    (Hydra's default is the start time, which two processes may read a second apart)."""
    sweep = "-m" in command or "--multirun" in command
    key, root = ("hydra.sweep.dir", "multirun") if sweep else ("hydra.run.dir", "outputs")
    if any(arg.startswith(key + "=") for arg in command):
        return command
    return [*command, f"{key}={root}/" + time.strftime("%Y-%m-%d/%H-%M-%S")]


def main(argv: Optional[list[str]] = None) -> int:
    args = parse(argv)
    command = with_run_dir(args.command)
    coordinator = f"127.0.0.1:{args.port or free_port()}"
    procs = []
    for i in range(args.processes):
        env = dict(os.environ, WILDROBOT_COORDINATOR=coordinator, WILDROBOT_NUM_PROCESSES=str(args.processes),
                   WILDROBOT_PROCESS_ID=str(i))
        procs.append(subprocess.Popen([sys.executable, *command], env=env))

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
        signal.signal(sig, forward)
    return wait_all(procs)


def wait_all(procs: list[subprocess.Popen], poll_s: float = 0.5, grace_s: float = 30.0,
             clock=time.monotonic) -> int:
    """Wait for every process; when one fails, end the others (they would wait in a collective for
    it): SIGTERM, then SIGKILL after ``grace_s`` (a run takes SIGTERM as a request to save at its
    next chunk boundary, which one waiting in a collective never reaches). The first non-zero exit
    code, a signal's as the shell writes it (128 + its number)."""
    failed, ending_since = 0, None
    while None in [p.poll() for p in procs]:  # a list: every process polled, each round
        failed = failed or next((p.returncode for p in procs if p.returncode), 0)
        if failed:
            ending_since = clock() if ending_since is None else ending_since
            overdue = clock() - ending_since >= grace_s
            for p in procs:
                if p.poll() is None:
                    p.kill() if overdue else p.terminate()
        time.sleep(poll_s)  # checking on child processes; nothing here races them
    codes = [p.returncode for p in procs]
    code = failed or next((c for c in codes if c), 0)
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
