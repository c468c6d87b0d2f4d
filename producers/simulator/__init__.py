"""Seeded transaction simulator: months of labelled history in seconds, or a live paced stream.

This package's public face is what other code uses (the CLI, the sinks, the demo, the benches,
``fraudstream-train first-model``); the modules behind it follow the simulator's seams:

- :mod:`.world`: regions, customers, merchants, the category catalogue (fixed for a run);
- :mod:`.draft`, :mod:`.legit`, :mod:`.fraud`: a day's legitimate traffic and fraud incidents
  as columns;
- :mod:`.config`: the validated run configuration, drift events included;
- :mod:`.drift`: the population's behaviour between drift events, and when each took effect;
- :mod:`.days`: the day generator (:class:`Simulator`) and :func:`generate_history`;
- :mod:`.frames`: empty frames of the public formats, rows to wire models, epoch-ms time;
- :mod:`.events`: transactions and labels in publication order, simulated or wall-clock time;
- :mod:`.live_stream`: the simulated-time stream (warm-up, then paced to end at the clock).

Ground truth travels in two ways: the ``is_fraud`` and ``scenario`` columns of the history frame
(for backtests), and :class:`~stream_app.schemas.Label` records published after a random delay
(as a chargeback feed would).
"""

from producers.simulator.config import (
    MIN_MERCHANTS,
    DriftSchedule,
    FraudRates,
    LabelPolicy,
    SimulatorConfig,
)
from producers.simulator.days import DayBatch, Simulator, generate_history
from producers.simulator.events import RealtimePacing, iter_events
from producers.simulator.frames import empty_transactions
from producers.simulator.live_stream import StreamSchedule, stream_events, stream_schedule

__all__ = [
    "MIN_MERCHANTS",
    "DayBatch",
    "DriftSchedule",
    "FraudRates",
    "LabelPolicy",
    "RealtimePacing",
    "Simulator",
    "SimulatorConfig",
    "StreamSchedule",
    "empty_transactions",
    "generate_history",
    "iter_events",
    "stream_events",
    "stream_schedule",
]
