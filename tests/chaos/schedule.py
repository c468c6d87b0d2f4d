"""A seeded schedule of faults: which fault strikes, and how many seconds into the stream.

The same seed gives the same schedule, so a failing soak can be run again as it was. Times are
drawn at random over the stream, with a minimum gap between two faults so that each one lands on
a group that has started to recover from the previous one (faults still overlap recoveries: a
worker's restart takes longer than the gap on a loaded machine).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum


class Fault(StrEnum):
    KILL = "sigkill worker"
    KILL_YOUNG = "sigkill worker < 5 s old"
    TERM = "sigterm worker"
    BUG = "bug while scoring"
    BROKER_KILL = "sigkill broker + restart"
    SCALE_OUT = "scale out (3rd worker)"
    SCALE_IN = "scale in (3rd worker leaves)"


# How often each kind is drawn, out of the faults that are not scale steps (those come in pairs).
WEIGHTS: dict[Fault, int] = {
    Fault.KILL: 5,
    Fault.KILL_YOUNG: 3,
    Fault.TERM: 4,
    Fault.BUG: 4,
    Fault.BROKER_KILL: 2,
}


@dataclass(frozen=True)
class ScheduledFault:
    at: float  # seconds after the stream started
    fault: Fault


def fault_schedule(
    seed: int, count: int, duration: float, min_gap: float, scale_pairs: int
) -> list[ScheduledFault]:
    """``count`` faults over ``duration`` seconds, every kind at least once, ``scale_pairs`` of
    them scale-out/scale-in pairs (a scale-in always follows its scale-out)."""
    rng = random.Random(seed)  # noqa: S311  # a reproducible schedule, not a secret
    kinds = list(WEIGHTS)  # every kind at least once
    while len(kinds) < count - 2 * scale_pairs:
        kinds.append(rng.choices(list(WEIGHTS), weights=list(WEIGHTS.values()))[0])
    rng.shuffle(kinds)
    times = _spread_times(rng, count, duration, min_gap)
    # Scale pairs take alternate-free slots: out at an even slot, in at a later slot.
    slots = list(range(count))
    scale_slots = sorted(rng.sample(slots, 2 * scale_pairs))
    plan: list[Fault] = []
    scale_iter = iter([Fault.SCALE_OUT, Fault.SCALE_IN] * scale_pairs)
    kind_iter = iter(kinds)
    for slot in slots:
        plan.append(next(scale_iter) if slot in scale_slots else next(kind_iter))
    return [ScheduledFault(at, fault) for at, fault in zip(times, plan, strict=True)]


def _spread_times(rng: random.Random, count: int, duration: float, min_gap: float) -> list[float]:
    """Sorted random times in (0, duration) at least ``min_gap`` apart: uniform draws over the
    slack, each shifted by the gaps before it (the standard way to keep a minimum spacing)."""
    slack = duration - min_gap * (count + 1)
    assert slack > 0, f"{count} faults {min_gap}s apart do not fit in {duration}s"
    draws = sorted(rng.uniform(0, slack) for _ in range(count))
    return [round(draw + min_gap * (index + 1), 1) for index, draw in enumerate(draws)]
