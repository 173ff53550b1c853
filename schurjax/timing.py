"""Wall time per named stage of a run, and the table run.log ends with — host only."""

import contextlib
import dataclasses
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path


@dataclasses.dataclass
class Lap:
    """The wall time of one timed block, set when the block ends."""

    seconds: float = 0.0


class Stopwatch:
    """Wall time of named stages: ``with stopwatch("training"): ...``.

    A stage timed more than once accumulates. The table lists the stages named in ``order`` in
    that order (a run computes some shared inputs before the stage they belong to), then the
    others in the order they were first timed.
    """

    def __init__(self, order: Sequence[str] = ()):
        self.started = time.perf_counter()
        self.seconds: dict[str, float] = {}
        self.order = tuple(order)

    @contextlib.contextmanager
    def __call__(self, stage: str) -> Iterator[Lap]:
        lap = Lap()
        started = time.perf_counter()
        try:
            yield lap
        finally:
            lap.seconds = time.perf_counter() - started
            self.seconds[stage] = self.seconds.get(stage, 0.0) + lap.seconds

    @property
    def elapsed(self) -> float:
        """Seconds since the stopwatch was made."""
        return time.perf_counter() - self.started

    def table(self, startup: float | None = None) -> str:
        """Seconds and share of the total per stage, one line each.

        ``startup`` (seconds spent before the stopwatch was made) comes first when known; time
        inside no stage (logging, drawing the held-out set, ...) is ``other``.
        """
        rank = {stage: position for position, stage in enumerate(self.order)}
        timed = sorted(self.seconds, key=lambda stage: rank.get(stage, len(rank)))
        stages = ({} if startup is None else {"start-up": startup}) | {stage: self.seconds[stage] for stage in timed}
        total = (startup or 0.0) + self.elapsed
        stages["other"] = max(total - sum(stages.values()), 0.0)
        width = max(map(len, stages)) + 2
        share = 100 / max(total, 1e-12)
        lines = [f"{name:<{width}}{seconds:9.2f} s {seconds * share:6.1f} %" for name, seconds in stages.items()]
        return "\n".join([*lines, f"{'total':<{width}}{total:9.2f} s  100.0 %"])


# one line of Stopwatch.table: the stage, its seconds and its share of the total
_TABLE_LINE = re.compile(r"^(?P<stage>\S.*?)\s+(?P<seconds>[0-9]+\.[0-9]+) s\s+(?P<share>[0-9]+\.[0-9]) %$")


def read_table(text: str) -> dict[str, tuple[float, float]]:
    """Seconds and percent share per stage (``total`` included) of a table as
    :meth:`Stopwatch.table` writes it, e.g. the end of a run.log; other lines are skipped."""
    matches = (_TABLE_LINE.match(line) for line in text.splitlines())
    return {m["stage"]: (float(m["seconds"]), float(m["share"])) for m in matches if m}


def process_age() -> float | None:
    """Seconds since this process started (from /proc, Linux), or None where that is unknown."""
    try:
        stat = Path("/proc/self/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except OSError:
        return None
    # fields after the command name (which may hold spaces) are fixed: the 20th is the start
    # time in clock ticks since boot
    start_ticks = int(stat.rsplit(")", 1)[1].split()[19])
    return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
