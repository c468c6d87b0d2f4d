"""The in-flight limit counts transactions, so many small batches pipeline while a full one
still waits for room; a batch alone always fits."""

from __future__ import annotations

import asyncio

from stream_app.worker.app import TransactionRoom


async def taken_at_once(room: TransactionRoom, transactions: int) -> bool:
    """Whether ``take`` returned without waiting for a ``give_back``."""
    try:
        await asyncio.wait_for(room.take(transactions), timeout=0.05)
    except TimeoutError:
        return False
    return True


def test_small_batches_fit_until_the_limit_and_wait_beyond_it() -> None:
    async def scenario() -> list[bool]:
        room = TransactionRoom(limit=10)
        fitted = [await taken_at_once(room, 1) for _ in range(10)]
        fitted.append(await taken_at_once(room, 1))  # the 11th waits
        return fitted

    assert asyncio.run(scenario()) == [True] * 10 + [False]


def test_a_waiting_batch_goes_once_enough_is_given_back() -> None:
    async def scenario() -> tuple[bool, int]:
        room = TransactionRoom(limit=10)
        await room.take(8)
        waiting = asyncio.create_task(room.take(5))
        await asyncio.sleep(0.01)
        still_waiting = not waiting.done()
        await room.give_back(8)
        await asyncio.wait_for(waiting, timeout=1)
        return still_waiting, room.used

    assert asyncio.run(scenario()) == (True, 5)


def test_a_batch_larger_than_the_limit_fits_alone() -> None:
    async def scenario() -> bool:
        return await taken_at_once(TransactionRoom(limit=10), 25)

    assert asyncio.run(scenario())
