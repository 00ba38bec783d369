"""A real one-node SLURM cluster: a high-partition job preempts a low-partition job, which gets
SIGUSR2 (``--signal=USR2@...`` + ``preempt_send_user_signal``), is requeued and runs again.

Takes ~40 s (GraceTime, KillWait and the requeue credential delay are real waits).
"""

import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import slurm_cluster  # noqa: E402


@pytest.fixture(scope="module")
def slurm():
    yield from slurm_cluster()


LOW_JOB = textwrap.dedent(
    """\
    import os, signal, sys, time
    out = os.environ["MARKER_DIR"]
    restart = int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)

    def mark(name, text=""):
        with open(os.path.join(out, name), "a") as f:
            f.write(f"{time.time():.3f} {text}\\n")

    def on_usr2(signum, frame):
        mark(f"usr2_{restart}", f"pid={os.getpid()}")

    def on_term(signum, frame):
        mark(f"term_{restart}")
        sys.exit(143)

    signal.signal(signal.SIGUSR2, on_usr2)
    signal.signal(signal.SIGTERM, on_term)
    mark(f"started_{restart}", f"job={os.environ['SLURM_JOB_ID']}")
    if restart >= 1:
        sys.exit(0)
    deadline = time.time() + 120
    while not os.path.exists(os.path.join(out, "release")):  # never created: wait to be preempted
        if time.time() > deadline:
            sys.exit(1)
        time.sleep(0.1)
    """
)


def test_preemption_sends_usr2_and_requeues(slurm, tmp_path):
    markers = tmp_path / "markers"
    markers.mkdir()
    script = tmp_path / "low_job.py"
    script.write_text(LOW_JOB)
    batch = tmp_path / "low.sbatch"
    batch.write_text(
        "#!/bin/bash\n"
        "#SBATCH --requeue\n"
        "#SBATCH --signal=USR2@60\n"
        "#SBATCH --time=10\n"
        f"#SBATCH --cpus-per-task={slurm.cpus}\n"
        f"#SBATCH --partition={slurm.partition_low}\n"
        f"#SBATCH --output={tmp_path}/low_%j.out\n"
        f"srun --unbuffered {sys.executable} -u {script}\n"
    )
    low = slurm.sbatch(f"--export=ALL,MARKER_DIR={markers}", str(batch))
    slurm.wait_for(lambda: (markers / "started_0").exists(), timeout=30, desc="low job to start")
    assert slurm.job_state(low) == "RUNNING"

    high = slurm.sbatch("--partition", slurm.partition_high, "--cpus-per-task=1", "--time=1",
                        f"--output={tmp_path}/high_%j.out",
                        "--wrap", f"date +%s.%N > {markers}/high_ran")

    slurm.wait_for(lambda: (markers / "usr2_0").exists(), timeout=30, desc="USR2 in the preempted job")
    slurm.wait_for(lambda: slurm.job_state(high) == "COMPLETED", timeout=60, desc="high job to complete")
    slurm.wait_for(lambda: slurm.job_state(low) in ("COMPLETED", "FAILED", "CANCELLED"), timeout=60,
                   desc="requeued low job to finish")

    info = slurm.job_info(low)
    assert info["JobState"] == "COMPLETED", info
    assert info["Restarts"] == "1", info
    assert (markers / "started_1").exists(), sorted(os.listdir(markers))
    assert not (markers / "usr2_1").exists()
    # order: USR2 reached the low job before the high job ran, the low job re-ran after it.
    t = {p.name: float(p.read_text().split()[0]) for p in markers.iterdir()}
    assert t["started_0"] < t["usr2_0"] < t["high_ran"] < t["started_1"], t
