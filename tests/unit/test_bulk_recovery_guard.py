"""Guard: the Faust recovery code stream_app/worker/bulk_recovery.py relies on is unchanged."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from faust.stores import memory

# What the store relies on in the pinned faust-streaming (0.15.3), by the sha256 of its source:
# - Recovery._add: a partition's recovery starts at the store's persisted_offset;
# - Recovery._build_offsets / _seek_offsets: that offset is only moved forward, and seeked to;
# - Recovery._slurp_changelogs: a message at or below the offset already seen is skipped;
# - memory.Store.apply_changelog_batch / _create_batch_iterator / on_recovery_completed: the
#   rules ChangelogImage applies (last value wins, None deletes, keys remember their partition);
# - TableManager.on_rebalance: tables (so their stores) rebalance before the recovery does;
# - Collection._new_store and FactoryMapping.by_url: the table finds the store by URL scheme.
# Standby partitions (the store keeps their keys and answers their offset on a takeover):
# - Recovery.on_rebalance / add_active / add_standby: a partition that becomes active starts
#   from the store's persisted_offset (Faust's own offsets are only kept for partitions that
#   were already active), and every active and standby partition asks for it;
# - TableManager / Recovery.on_partitions_revoked, Recovery.flush_buffers: the standby messages
#   Faust buffered are applied before the rebalance asks, so the store's offset is what it holds;
# - PartitionAssignor.assigned_actives: the partitions a rebalance makes active (for the log).
FAUST_SOURCES_SHA256 = {
    "Recovery._add": "1584a197b11bf835c0e3c497952413ce5a5f13078fdd88a9dcfd60ea1e125fa6",
    "Recovery._build_offsets": "27eec86be06cb51f66dfd2572be2f9b41acd22c3570239bb5c554bd94e59a1d6",
    "Recovery._seek_offsets": "19598ca63d94d250e49d2dfe48a3c48ecbdf65ee4f1a2871abda51d28b335e55",
    "Recovery._slurp_changelogs": (
        "7825c7e50f766d5ab0fd246b63420ea0dfcd732d005f1057cc9da656ff5d3967"
    ),
    "Store.apply_changelog_batch": (
        "71863e3cd727aac2001c4f19a393c637275eab36056c9a2d395ed1c7528e7647"
    ),
    "Store._create_batch_iterator": (
        "b082c8bcc040382347025bd5b08d31700b2e6b1d2c0232f1de551f1b5495d1ed"
    ),
    "Store.on_recovery_completed": (
        "a00bef343e139602606996e88809e62731a9113691ae678095266a52e0e0b013"
    ),
    "TableManager.on_rebalance": "2d2c23a07bf5432854a01ad790af19bb7e7acc8062a6ac2934ff0db94bf3924a",
    "Collection._new_store": "914a2bda605d38f5b5bdf07f2d0b01ef565dd036b2b3e5391c54321094daf4b5",
    "FactoryMapping.by_url": "9020f00af2bc4f62f525985b51daa0687f9000d5b1f737eb1b41fa35c8b94dc5",
    "Recovery.on_rebalance": "aa4d997a1795ceae3880f98311b46935d9ae1a183a699b9a283bb4306bc8641f",
    "Recovery.add_active": "033aae28e4dcef9276ce1a441818c3a352f24528d91b8a1d874335f6f73700f3",
    "Recovery.add_standby": "7c2d15b37844b8b484f87fa2387e4cd331751c4f3116c769fcaf1d993005e6e8",
    "Recovery.on_partitions_revoked": (
        "161b5e997f7cbfefbcc6476066dab2230f1857311bfdc6332872966c285af481"
    ),
    "Recovery.flush_buffers": "6fa9c17f1071018c49cb6d411a34fb4a2c2ac4f41c3de650bbee15831abd6f1f",
    "TableManager.on_partitions_revoked": (
        "382852adff42ab9930b39e38433a77c06e41d39dd20e8231e8cfae45084c84b4"
    ),
    "PartitionAssignor.assigned_actives": (
        "cd131e5935099dda148d7e894332cc62fe94493bc99f86f42c4936daf4b6b3b5"
    ),
}


def faust_sources() -> dict[str, str]:
    from faust.assignor.partition_assignor import PartitionAssignor
    from faust.tables.base import Collection
    from faust.tables.manager import TableManager
    from faust.tables.recovery import Recovery
    from mode.utils.imports import FactoryMapping

    functions: list[Any] = [
        Recovery._add,
        Recovery._build_offsets,
        Recovery._seek_offsets,
        Recovery._slurp_changelogs.fun,  # a mode ServiceTask: the coroutine function inside
        memory.Store.apply_changelog_batch,
        memory.Store._create_batch_iterator,
        memory.Store.on_recovery_completed,
        TableManager.on_rebalance,
        Collection._new_store,
        FactoryMapping.by_url,
        Recovery.on_rebalance,
        Recovery.add_active,
        Recovery.add_standby,
        Recovery.on_partitions_revoked,
        Recovery.flush_buffers,
        TableManager.on_partitions_revoked,
        PartitionAssignor.assigned_actives,
    ]
    return {function.__qualname__: inspect.getsource(function) for function in functions}


def test_the_faust_recovery_code_the_store_relies_on_is_unchanged() -> None:
    # An upgrade of faust-streaming that changes any of these must be looked at (and the guard's
    # hashes updated), not silently run past: see stream_app/worker/bulk_recovery.py.
    changed = [
        name
        for name, source in faust_sources().items()
        if hashlib.sha256(source.encode()).hexdigest() != FAUST_SOURCES_SHA256.get(name)
    ]
    assert changed == [], f"faust changed {changed}: re-check stream_app/worker/bulk_recovery.py"
