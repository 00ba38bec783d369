"""TensorBoard logging (tensorboardX) and a small event-file reader for tests and plots."""

from __future__ import annotations

import struct
import time
import uuid
from pathlib import Path
from typing import Mapping, Optional

import jax
from tensorboardX.event_file_writer import EventsWriter
from tensorboardX.proto import event_pb2
from tensorboardX.summary import scalar


class TensorBoardLogger:
    """One event file per run (or per resume), written on the main process only. ``purge_step`` on
    resume drops the events an interrupted run wrote after its last checkpoint, so the curves stay
    continuous.

    tensorboardX's ``EventsWriter`` writes each event in the calling thread (``SummaryWriter`` hands
    them to a queue that a thread drains on its own time, which its ``flush`` does not wait for):
    each chunk's points are on disk once logged, and ``flush`` before a checkpoint makes sure of it."""

    def __init__(self, logdir: Path, purge_step: Optional[int] = None):
        self.writer = None
        if jax.process_index() == 0:
            Path(logdir).mkdir(parents=True, exist_ok=True)
            # A unique suffix: two writers opened in the same second would overwrite each other.
            self.writer = EventsWriter(str(Path(logdir) / "events"), f".{uuid.uuid4().hex[:8]}")
            if purge_step is not None:  # TensorBoard hides the points >= purge_step written before this
                self.writer.write_event(event_pb2.Event(wall_time=time.time(), step=purge_step,
                                                        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)))

    def scalars(self, metrics: Mapping[str, float], step: int) -> None:
        if self.writer is None:
            return
        now = time.time()
        for tag, value in metrics.items():
            self.writer.write_event(event_pb2.Event(wall_time=now, step=int(step), summary=scalar(tag, float(value))))
        self.writer.flush()  # a live TensorBoard (and wildrobot.sweep) sees each chunk as it is logged

    def flush(self) -> None:
        """Everything logged so far onto disk: called before each checkpoint, so that a run killed
        outright (SIGKILL, out of memory, a lost node) keeps its curves up to its newest checkpoint,
        from where a resume continues them."""
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def has_events(logdir: Path) -> bool:
    return any(Path(logdir).rglob("events.out.tfevents.*"))


def _records(path: Path):
    data = path.read_bytes()
    pos = 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack("<Q", data[pos : pos + 8])
        start = pos + 12  # length, then its 4-byte CRC
        end = start + length
        if end + 4 > len(data):
            return  # a record still being written
        yield data[start:end]
        pos = end + 4


def read_scalars(logdir: Path) -> dict[str, list[tuple[int, float]]]:
    """All scalars under ``logdir`` as {tag: [(step, value), ...]} sorted by step, honouring
    purge events the way TensorBoard does (a restart at step s hides older points >= s)."""
    events = []
    for path in sorted(Path(logdir).rglob("events.out.tfevents.*")):
        for raw in _records(path):
            ev = event_pb2.Event()
            ev.ParseFromString(raw)
            events.append(ev)
    events.sort(key=lambda e: e.wall_time)
    scalars: dict[str, list[tuple[int, float]]] = {}
    for ev in events:
        if ev.HasField("session_log") and ev.session_log.status == event_pb2.SessionLog.START:
            for tag in scalars:
                scalars[tag] = [(s, v) for s, v in scalars[tag] if s < ev.step]
        if ev.HasField("summary"):
            for value in ev.summary.value:
                scalars.setdefault(value.tag, []).append((ev.step, value.simple_value))
    return {tag: sorted(points) for tag, points in scalars.items()}
