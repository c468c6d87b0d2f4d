"""Archive ``transactions`` and ``transaction-labels`` into the lake that training reads.

Layout (the same as the simulator's ``LakeSink``, so training cannot tell who wrote a day):
``lake/transactions/date=YYYY-MM-DD/<part>.parquet`` by transaction ``timestamp`` and
``lake/labels/date=YYYY-MM-DD/<part>.parquet`` by ``labeled_at``, both UTC, with the columns of
the simulator's frames (no ``schema_version``, no ground truth on transactions).

Delivery: at least once, without duplicate rows. Rows are buffered per topic-partition and a
buffer is flushed (one part per date it touches) once it holds ``max_rows`` rows (checked after
each consumed batch of up to 1,000) or is ``max_seconds`` old; its offsets are committed only
after its parts are written. A part is named after the topic, partition and offset range it
holds (``transactions-2-000000001200-000000001999``), so a replay after a crash rewrites the
same objects instead of adding rows, provided it cuts the replay at the same offsets. That is
what the flush intent is for: before writing parts, the writer records ``{first, last}`` under
``lake/_writer/<topic>/<partition>.json``; a buffer that opens inside a recorded range (the
crashed flush, replayed from the committed offset) adopts that range and flushes exactly at its
end, whatever the row and time limits say.
This assumes one writer group per lake: a second group, or a group reset to the start of the
topics, archives the messages again next to the first copy.

Invalid messages are counted, logged and skipped (their offsets are still committed): the
worker's dead-letter topic already records bad transactions with the reason.

The modules: :mod:`.buffers` (where each topic's rows go, a partition's buffer, when it is due,
the flush intent), :mod:`.writer` (buffers records, writes parts, commits through a callback:
no Kafka, so the delivery rules are tested with fakes) and :mod:`.loop` (the Kafka shell and
the wiring from settings).
"""
