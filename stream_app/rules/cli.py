"""``fraudstream-rules``: put, delete and list the rules on ``fraud-rules``, and backtest them.

For people who prefer a command to kcat or kafka-console-producer (docs/rules.md shows both).
``put`` validates each rule with the worker's own models before producing it, so a typo is
refused here rather than dead-lettered by every worker.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from stream_app.kafka import producer_config, raw_record
from stream_app.rules.backtest import backtest, build_history, format_table, read_rules
from stream_app.rules.book import RuleBook
from stream_app.settings import Settings

LIST_TIMEOUT_SECONDS = 30.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="fraudstream-rules",
        description="Manage and backtest fraud rules (the fraud-rules topic; docs/rules.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    put = commands.add_parser("put", help="validate and produce rules (JSON lines; - for stdin)")
    put.add_argument("file", help="a file of rules, one JSON object per line, or -")
    delete = commands.add_parser("delete", help="delete rules (tombstones)")
    delete.add_argument("rule_ids", nargs="+")
    commands.add_parser("list", help="print the rules in force, one JSON object per line")
    test = commands.add_parser("backtest", help="run rules over a labelled history")
    test.add_argument("rules", type=Path, help="rules, one JSON object per line")
    test.add_argument("history", nargs="?", type=Path, help="Parquet with is_fraud")
    test.add_argument("--simulate-days", type=int, help="simulate this many days instead")
    test.add_argument("--customers", type=int, default=2000, help="simulated customers")
    test.add_argument("--seed", type=int, default=42, help="simulator seed")
    test.add_argument("--model", type=Path, help="model folder: measure against its decisions")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    settings = Settings()
    try:
        if args.command == "put":
            _put(settings, args.file)
        elif args.command == "delete":
            _produce(settings, [(rule_id, None) for rule_id in args.rule_ids])
        elif args.command == "list":
            for rule in _current(settings).ruleset.rules:
                sys.stdout.write(rule.model_dump_json(exclude_none=True) + "\n")
        else:
            _backtest(args)
    except ValueError as exc:
        sys.stderr.write(f"fraudstream-rules: {exc}\n")
        raise SystemExit(2) from exc


def _put(settings: Settings, file: str) -> None:
    path = Path("/dev/stdin" if file == "-" else file)
    rules = read_rules(path)
    _produce(settings, [(rule.rule_id, rule.model_dump_json(exclude_none=True)) for rule in rules])
    for rule in rules:
        sys.stdout.write(f"put {rule.rule_id} ({rule.kind}, {rule.mode})\n")


def _produce(settings: Settings, messages: list[tuple[str, str | None]]) -> None:
    producer = Producer(producer_config(settings.kafka, "fraudstream-rules"))
    failures: list[str] = []
    topic = settings.kafka.topics.rules

    def on_delivery(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for key, value in messages:
        encoded = None if value is None else value.encode("utf-8")
        producer.produce(topic, encoded, key.encode(), on_delivery=on_delivery)
    if producer.flush(30) or failures:
        raise ValueError(f"not every rule was written: {failures[:3]}")


def _current(settings: Settings) -> RuleBook:
    """Read the topic to its end now and fold it, as a worker does (settings rules aside)."""
    topic = settings.kafka.topics.rules
    consumer = Consumer(
        {
            **settings.kafka.confluent_config(),
            "group.id": f"fraudstream-rules-cli-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    book = RuleBook()
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        starts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in starts}
        consumer.assign(starts)
        deadline = time.monotonic() + LIST_TIMEOUT_SECONDS
        done = {p for p, end in ends.items() if end == 0}
        while len(done) < len(ends) and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=500, timeout=0.5):
                if message.error() is not None:
                    continue
                record = raw_record(message)
                book.apply([record])
                if record.offset + 1 >= ends[record.partition]:
                    done.add(record.partition)
    finally:
        consumer.close()
    return book


def _backtest(args: argparse.Namespace) -> None:
    from producers.simulator import SimulatorConfig, generate_history
    from stream_app.model_store import load_folder

    rules = read_rules(args.rules)
    labels = None
    if args.simulate_days:
        config = SimulatorConfig(seed=args.seed, n_customers=args.customers)
        transactions, labels = generate_history(config, args.simulate_days)
    elif args.history is not None:
        import pandas as pd

        transactions = pd.read_parquet(args.history)
    else:
        raise ValueError("give a history file or --simulate-days")
    if "is_fraud" not in transactions.columns:
        raise ValueError("the history needs an is_fraud column (labelled transactions)")
    model = load_folder(args.model) if args.model is not None else None
    history = build_history(transactions, labels, model)
    sys.stdout.write(format_table(backtest(rules, history), history) + "\n")


if __name__ == "__main__":
    main()
