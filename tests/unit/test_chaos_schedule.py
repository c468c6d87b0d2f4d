"""The chaos soak's fault schedule (tests/chaos/schedule.py): seeded, complete, well spaced."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

import pytest

from tests.chaos.schedule import WEIGHTS, Fault, fault_schedule


def schedule(seed: int = 17) -> list[tuple[float, Fault]]:
    return [(s.at, s.fault) for s in fault_schedule(seed, 32, 237.5, 4.0, 2)]


def test_the_same_seed_gives_the_same_schedule_and_another_seed_another() -> None:
    assert schedule(17) == schedule(17)
    assert schedule(17) != schedule(18)


@pytest.mark.parametrize("seed", range(20))
def test_every_kind_strikes_scale_in_follows_scale_out_and_faults_keep_their_gap(
    seed: int,
) -> None:
    plan = schedule(seed)
    kinds = Counter(fault for _, fault in plan)
    assert len(plan) == 32
    assert set(WEIGHTS) <= set(kinds)
    assert kinds[Fault.SCALE_OUT] == kinds[Fault.SCALE_IN] == 2
    scale_steps = [fault for _, fault in plan if fault in (Fault.SCALE_OUT, Fault.SCALE_IN)]
    assert scale_steps == [Fault.SCALE_OUT, Fault.SCALE_IN] * 2
    times = [at for at, _ in plan]
    assert times == sorted(times)
    assert times[0] > 0 and times[-1] < 237.5
    assert all(later - earlier >= 4.0 - 0.1 for earlier, later in pairwise(times))


def test_a_schedule_that_cannot_keep_its_gaps_is_refused() -> None:
    with pytest.raises(AssertionError, match="do not fit"):
        fault_schedule(1, 32, 100.0, 4.0, 2)
