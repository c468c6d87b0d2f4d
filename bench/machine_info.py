"""The machine a benchmark ran on, recorded in every result file: cores, CPU, RAM, load,
Python, the local broker's Kafka version."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any

from benchkit import BOOTSTRAP, REPO


def machine() -> dict[str, Any]:
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.MULTILINE)
        cpu = found.group(1).strip() if found else cpu
    meminfo = Path("/proc/meminfo")
    ram_gib = float("nan")
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s+(\d+) kB", meminfo.read_text(), re.MULTILINE)
        ram_gib = round(int(found.group(1)) / 1024**2, 1) if found else ram_gib
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "ram_gib": ram_gib,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kafka": kafka_version(),
        "broker": BOOTSTRAP,
    }


def kafka_version() -> str:
    """From the local broker's jar name (deploy/kafka/broker.sh fetches it)."""
    jars = sorted((REPO / ".local/kafka/libs").glob("kafka_2.13-*.jar"))
    for jar in jars:
        found = re.match(r"kafka_2\.13-([\d.]+)\.jar$", jar.name)
        if found:
            return found.group(1)
    return "unknown"
