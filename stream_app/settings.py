"""Typed settings for every fraudstream process.

Read once at each entry point with ``Settings()`` and passed down as typed sub-configs; nothing
below an entry point reads ``os.environ``. Every field maps to an environment variable with the
``FRAUDSTREAM_`` prefix and ``__`` between section and field, for example
``FRAUDSTREAM_KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "FRAUDSTREAM_"


class Section(BaseModel):
    """Base of every settings section: field docstrings become the documented meaning."""

    model_config = ConfigDict(use_attribute_docstrings=True)


class TopicNames(Section):
    """Kafka topic names; change them to share one cluster between deployments."""

    transactions: str = "transactions"
    """Incoming transactions, keyed by customer_id."""
    alerts: str = "fraud-alerts"
    """Review and block verdicts."""
    scores: str = "fraud-scores"
    """Every verdict with its feature vector."""
    labels: str = "transaction-labels"
    """Delayed ground truth (chargebacks, analyst decisions)."""
    dead_letters: str = "transactions-dlq"
    """Input the worker could not use, with the reason."""
    retrain_requests: str = "retrain-requests"
    """Retrain events raised by the drift monitor."""
    model_updates: str = "model-updates"
    """Newly promoted models, for workers to swap to."""
    rules: str = "fraud-rules"
    """Fraud rules as data (compacted, keyed by rule_id; a null value deletes a rule): every
    worker reads all of it and applies changes between batches (docs/rules.md)."""

    # Topics created with cleanup.policy=compact: only each key's latest value matters.
    COMPACTED: ClassVar[tuple[str, ...]] = ("rules",)

    def all(self) -> list[str]:
        return list(self.model_dump().values())

    def compacted(self) -> list[str]:
        return [getattr(self, field) for field in self.COMPACTED]


class KafkaSettings(Section):
    """Broker address, security and topic layout."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """How clients talk to the brokers."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    """SASL mechanism, with a SASL_* protocol."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (secret: never logged)."""
    ssl_cafile: Path | None = None
    """CA bundle that signed the brokers' certificates."""
    ssl_certfile: Path | None = None
    """Client certificate, for mutual TLS."""
    ssl_keyfile: Path | None = None
    """Client private key, for mutual TLS."""
    partitions: int = Field(default=3, ge=1)
    """Partitions of the topics the project creates: the most workers that can share the load."""
    replication_factor: int = Field(default=1, ge=1)
    """Replicas of the topics the project creates."""
    topics: TopicNames = TopicNames()

    def confluent_config(self) -> dict[str, Any]:
        """The connection part of a confluent-kafka (librdkafka) client config."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism is not None:
            config["sasl.mechanism"] = self.sasl_mechanism
            config["sasl.username"] = self.sasl_username or ""
            config["sasl.password"] = (
                self.sasl_password.get_secret_value() if self.sasl_password else ""
            )
        optional_files = {
            "ssl.ca.location": self.ssl_cafile,
            "ssl.certificate.location": self.ssl_certfile,
            "ssl.key.location": self.ssl_keyfile,
        }
        config.update({key: str(path) for key, path in optional_files.items() if path})
        return config


class MlflowSettings(Section):
    """Tracking server and registry names."""

    tracking_uri: str = "http://127.0.0.1:5000"
    """MLflow tracking server."""
    experiment: str = "fraudstream"
    """Experiment that training runs are logged to."""
    model_name: str = "fraudstream-xgb"
    """Registered model name."""
    champion_alias: str = "champion"
    """Registry alias of the model in service."""


class StoreSettings(Section):
    """Object store for the lake, models and drift reports: a local folder or ``s3://bucket/prefix``."""

    uri: str = ".local/store"
    """A local folder, or s3://bucket/prefix."""
    s3_endpoint_url: str | None = None
    """S3-compatible endpoint (MinIO, s3proxy); unset for AWS."""
    s3_region: str = "us-east-1"
    """S3 region."""
    s3_access_key_id: SecretStr | None = None
    """S3 access key; unset to use the AWS default credential chain."""
    s3_secret_access_key: SecretStr | None = None
    """S3 secret key (secret: never logged)."""


class WorkerSettings(Section):
    """The Faust worker: identity, web server, batching and the model it starts with."""

    app_id: str = "fraudstream-worker"
    """Faust app id, also the consumer group: workers with the same id share the partitions."""
    web_host: str = "127.0.0.1"
    """Address /metrics, /health and /predict bind to."""
    web_port: int = Field(default=6066, ge=1, le=65535)
    """Port of the web server."""
    predict_forward_timeout_seconds: float = Field(default=2.0, gt=0)
    """How long /predict waits for the worker that owns the customer's partition before it
    answers 503 (owner_unreachable)."""
    data_dir: Path = Path(".local/worker")
    """Faust's local data folder."""
    batch_size: int = Field(default=1000, ge=1)
    """Most transactions scored in one batch. A batch never waits to fill: it holds what is
    queued when it starts (docs/worker.md), so batches grow with the load up to this."""
    session_timeout_seconds: float = Field(default=20, ge=6, le=300)
    """How long the group waits for a silent worker (one killed with SIGKILL) before its
    partitions go to the others, or to its restart: the floor of recovery after a crash.
    Faust's own default is 60 s; heartbeats are sent every fifth of this."""
    standby_replicas: int = Field(default=1, ge=0)
    """Standby copies of each customer-state partition kept by other workers, so a takeover
    reads only what the copy had not applied yet (docs/faults.md, "Standby replicas"), at the
    memory of a second copy: with two workers and 1, each worker holds every customer. 0 turns
    them off (a worker alone has no standbys whatever this says)."""
    model_path: Path = Path(".local/models/champion")
    """Model folder (model.ubj + metadata.json) loaded at start."""
    review_threshold: float | None = Field(default=None, ge=0, le=1)
    """Overrides the model's stored review threshold."""
    block_threshold: float | None = Field(default=None, ge=0, le=1)
    """Overrides the model's stored block threshold."""
    log_level: str = "INFO"
    """Python logging level."""
    model_poll_seconds: float = Field(default=30, ge=0)
    """How often to check the registry's champion alias for a new model (0: never)."""
    shadow_model_path: Path | None = None
    """A challenger model folder scored on the same events; recorded, never acted on."""
    labels_lookback_days: int = Field(default=32, ge=1)
    """How far back the labels reader starts: the longest merchant-risk window plus margin."""
    merchant_volume_all_partitions: bool = True
    """Count merchant volume from every partition of the transactions topic (a reader thread
    outside the group), so it does not depend on which partitions the worker owns. False: only
    the worker's own transactions (a single worker on every partition gives the same)."""
    merchant_volume_wait_seconds: float = Field(default=5.0, gt=0)
    """Longest wait before a batch for every transactions partition to be read past the
    batch's as-of time (t - 1 s); on timeout the batch is scored with what was read, logged
    and counted (fraudstream_merchant_volume_wait_timeouts_total)."""
    deny_list_path: Path | None = None
    """JSON deny-list: {"customer_id": [...], "device_id": [...], "merchant_id": [...]} (block)."""
    review_above_usd: float | None = Field(default=None, gt=0)
    """Amount limit in US dollars above which a transaction goes at least to review."""
    stall_seconds: float = Field(default=30, gt=0)
    """Progress watchdog: how long an assigned transactions partition may have records to read
    (high watermark ahead of the worker's position: the lower of its fetch position and its
    committed offset) without that position moving, before the worker counts a stall
    (fraudstream_partition_stalls_total) and turns /health not ready."""
    stall_action: Literal["exit", "report"] = "exit"
    """What a stall does beyond that: "exit" leaves with code 75 (EX_TEMPFAIL) for the
    supervisor to restart the worker, "report" only logs, counts and stays not ready."""


class DriftSettings(Section):
    """The drift monitor: windows over fraud-scores, the test, and when to ask for a retrain."""

    app_id: str = "fraudstream-drift"
    """Consumer group of the drift monitor (run one monitor per group: a window is one sample)."""
    window_size: int = Field(default=5000, ge=100)
    """Verdicts per window (a window also closes after window_seconds)."""
    window_seconds: float = Field(default=300, gt=0)
    """Longest a window stays open, in event time."""
    min_window_rows: int = Field(default=1000, ge=1)
    """A window due by time with fewer verdicts stays open until it has this many (PSI noise)."""
    feature_threshold: float = Field(default=0.05, gt=0)
    """PSI (over the reference's deciles or values) at or above which a feature has drifted."""
    drift_share_threshold: float = Field(default=0.12, gt=0, le=1)
    """Share of monitored features drifted at or above which a window counts as drifted."""
    excluded_features: tuple[str, ...] = (
        "hour_of_day",
        "day_of_week",
        "is_weekend",
        "amount",
        "seconds_since_device_first_seen",
    )
    """Not checked (JSON list): calendar features always differ from a sample spanning days, and
    so does ``amount`` (local currency: the currency mix follows the clock round the world;
    ``amount_usd`` is checked); ``seconds_since_device_first_seen`` grows with the customers'
    history, so a later window always reads as drifted from the reference
    (``device_first_seen`` is checked)."""
    consecutive_windows: int = Field(default=3, ge=1)
    """Drifted windows in a row that raise a retrain request."""
    cooldown_seconds: float = Field(default=3600, ge=0)
    """No new retrain request for this long after one (windows are still checked)."""
    auto_offset_reset: Literal["earliest", "latest"] = "latest"
    """Where a new consumer group starts reading fraud-scores."""
    reference_path: Path | None = None
    """Reference sample (Parquet: features + score) to use instead of the champion's in MLflow."""
    web_host: str = "127.0.0.1"
    """Address the drift monitor's /metrics binds to."""
    web_port: int = Field(default=6067, ge=1, le=65535)
    """Port of the drift monitor's /metrics."""
    log_level: str = "INFO"
    """Python logging level of the drift monitor."""


class TrainingSettings(Section):
    """The training consumer (retrains on request) and the lake writer (archives the topics)."""

    app_id: str = "fraudstream-trainer"
    """Consumer group of the training consumer."""
    history_days: int = Field(default=28, ge=1)
    """Days of lake history a retrain uses."""
    min_fraud_labels: int = Field(default=50, ge=1)
    """Fraud labels, known now, of transactions since the drift window began, needed to retrain."""
    promotion_margin: float = Field(default=0.0, ge=0)
    """Average precision a challenger must beat the champion by to be promoted."""
    validation_days: float = Field(default=4.0, gt=0)
    """Days of the validation split (early stopping, decision thresholds)."""
    test_days: float = Field(default=5.0, gt=0)
    """Days of the test split: the holdout challenger and champion are compared on."""
    gap_days: float = Field(default=3.0, ge=0)
    """Days after each split left for its labels to arrive."""
    num_boost_round: int = Field(default=300, ge=1)
    """Most boosting rounds of a retrain (early stopping usually ends sooner)."""
    nthread: int = Field(default=2, ge=1)
    """XGBoost threads of a retrain."""
    seed: int = Field(default=42, ge=0)
    """Random seed of a retrain."""
    retry_seconds: float = Field(default=300, gt=0)
    """First wait before re-checking a request whose labels have not matured; it then doubles."""
    retry_max_seconds: float = Field(default=3600, gt=0)
    """Longest wait between two checks of a request that is not ready."""
    lake_writer_app_id: str = "fraudstream-lake-writer"
    """Consumer group of the lake writer."""
    lake_flush_rows: int = Field(default=50_000, ge=1)
    """Rows per topic-partition after which the lake writer writes a part."""
    lake_flush_seconds: float = Field(default=60, gt=0)
    """Longest the lake writer holds rows before writing them (and committing their offsets)."""


class Settings(BaseSettings):
    """All settings; see docs/configuration.md for every variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    mlflow: MlflowSettings = MlflowSettings()
    store: StoreSettings = StoreSettings()
    worker: WorkerSettings = WorkerSettings()
    drift: DriftSettings = DriftSettings()
    training: TrainingSettings = TrainingSettings()
