"""The metadata schema as SQLAlchemy tables: what alembic migrations produce.

Only migrations and schema tests import this module; the runtime uses plain SQL
(see ``database.py``). ``tests/test_migrations.py`` checks that the migrated database
and these tables agree. Times are seconds since the epoch; JSON columns hold text.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

executions = Table(
    "executions",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("flow_name", String(255), nullable=False),
    Column(
        "flow_ref", Text, nullable=False, comment="module:qualname or path/to/script.py:qualname"
    ),
    Column("status", String(16), nullable=False),
    Column("stack", String(255), nullable=False),
    Column("original_exec_id", String(128), nullable=True),
    Column("result_artifact_id", String(64), nullable=True),
    Column("error", Text, nullable=True, comment="JSON: type, message, traceback"),
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("options", Text, nullable=False, server_default="{}"),
    Column("lease_owner", String(255), nullable=True),
    Column("lease_heartbeat", Float, nullable=True),
    Column("runs", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    Column(
        "wake_at",
        Float,
        nullable=True,
        comment="when a sleeping execution's timer or a waiting one's deadline is due",
    ),
    Column(
        "queue",
        String(255),
        nullable=True,
        comment="the flow's queue when it limits concurrency or runs one per key",
    ),
    Column("queue_key", Text, nullable=True, comment="the key argument's value"),
    Column(
        "recoveries",
        Integer,
        nullable=False,
        server_default="0",
        comment="times a worker resumed it after its process died",
    ),
    Column(
        "died_in",
        String(255),
        nullable=True,
        comment="the process (host:pid:start) that last died while running it",
    ),
    Column(
        "died_with",
        Integer,
        nullable=True,
        comment="how many executions that process was running when it died",
    ),
    Column(
        "death_step",
        Integer,
        nullable=True,
        comment="completed steps at its last death that counted against it",
    ),
    Column(
        "parent_exec_id",
        String(128),
        nullable=True,
        comment="the execution whose flow body started this one",
    ),
    Column(
        "parent_position",
        Integer,
        nullable=True,
        comment="the parent's journal position of the call",
    ),
    Column("code_version", String(128), nullable=True, comment="null: recorded before 0017"),
    Column("code_archive", String(64), nullable=True, comment="sha256 of its source archive"),
    Column("started_by", String(128), nullable=True, comment="token name; null: direct"),
    Index("ix_executions_status", "status"),
    Index("ix_executions_queue", "queue", "status"),
    Index("ix_executions_wake", "status", "wake_at"),
    Index("ix_executions_flow_created", "flow_name", "created_at"),
    Index("ix_executions_created", "created_at"),
    Index("ix_executions_parent", "parent_exec_id"),
    Index("ix_executions_code_version", "code_version", "status"),
    Index("ix_executions_code_archive", "code_archive"),
)

journal = Table(
    "journal",
    metadata,
    Column("exec_id", String(128), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False, server_default="checkpoint"),
    Column("status", String(16), nullable=False),
    Column("output_artifact_id", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("error", Text, nullable=True),
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("started_at", Float, nullable=False),
    Column("ended_at", Float, nullable=False),
    Column(
        "path",
        Text,
        nullable=True,
        comment="the step's path in the tree of tasks; NULL: its position",
    ),
    Index(
        "ix_journal_path",
        "exec_id",
        "path",
        unique=True,
        sqlite_where=text("path IS NOT NULL"),
        postgresql_where=text("path IS NOT NULL"),
    ),
    Index(
        "ix_journal_ended",
        "ended_at",
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    ),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("exec_id", String(128), nullable=True),
    Column("name", String(255), nullable=False),
    Column("role", String(16), nullable=False, comment="input, output, saved or result"),
    Column("artifact_type", String(64), nullable=False, server_default="output"),
    Column("position", Integer, nullable=True),
    Column("key", String(128), nullable=False, comment="content hash in the artifact store"),
    Column("serializer", String(16), nullable=False),
    Column("type_ref", Text, nullable=False),
    Column("size", Integer, nullable=False),
    Column("tags", Text, nullable=False, server_default="[]"),
    Column(
        "inline",
        LargeBinary,
        nullable=True,
        comment="the bytes of a small artifact; larger ones live in the artifact store",
    ),
    Column(
        "signature",
        String(64),
        nullable=True,
        comment="HMAC-SHA256 of a value whose loading runs code (pickle, typed models)",
    ),
    Column("created_at", Float, nullable=False),
    Index("ix_artifacts_exec_name", "exec_id", "name"),
    Index(
        "ix_artifacts_blob_key",
        "key",
        sqlite_where=text("inline IS NULL"),
        postgresql_where=text("inline IS NULL"),
    ),
)

waits = Table(
    "waits",
    metadata,
    Column("exec_id", String(128), primary_key=True),
    Column("name", String(255), primary_key=True),
    Column("position", Integer, nullable=False),
    Column("status", String(16), nullable=False, comment="pending, answered, aborted"),
    Column("question", Text, nullable=True),
    Column("schema", Text, nullable=False, comment="JSON schema of the expected value"),
    Column("schema_name", String(255), nullable=False),
    Column("metadata", Text, nullable=False, server_default="{}"),
    Column("value_artifact_id", String(64), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("answered_at", Float, nullable=True),
    Column(
        "expires_at",
        Float,
        nullable=True,
        comment="after this, the wait resolves to its default or fails",
    ),
    Index("ix_waits_status", "status"),
)

memory = Table(
    "memory",
    metadata,
    Column("scope_type", String(16), primary_key=True),
    Column("scope", String(255), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("artifact_id", String(64), nullable=True, comment="NULL for a tombstone"),
    Column("exec_id", String(128), nullable=True, comment="the execution that wrote it"),
    Column("stack", String(255), nullable=False, comment="whose artifact store holds it"),
    Column("created_at", Float, nullable=False),
)

stacks = Table(
    "stacks",
    metadata,
    Column("name", String(255), primary_key=True),
    Column(
        "definition", Text, nullable=False, comment="the stack file as JSON, secrets unresolved"
    ),
    Column("source", Text, nullable=True, comment="the file it was registered from"),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

llm_calls = Table(
    "llm_calls",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("exec_id", String(128), nullable=True),
    Column("position", Integer, nullable=True, comment="journal position of its checkpoint"),
    Column("checkpoint", String(255), nullable=True),
    Column("alias", String(255), nullable=True),
    Column("model", String(255), nullable=False, comment="the provider model it resolved to"),
    Column("prompt_artifact_id", String(64), nullable=True),
    Column("response_artifact_id", String(64), nullable=True),
    Column("input_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("cost_usd", Float, nullable=True),
    Column("latency", Float, nullable=False, comment="seconds"),
    Column("attempts", Integer, nullable=False, server_default="1"),
    Column("error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Index("ix_llm_calls_exec", "exec_id"),
    Index(
        "ix_llm_calls_created",
        "created_at",
        postgresql_using="brin",
        postgresql_with={"autosummarize": "on"},
    ),
)

schedules = Table(
    "schedules",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("flow_ref", Text, nullable=False),
    Column("flow_name", String(255), nullable=False),
    Column("args", Text, nullable=False, server_default="{}", comment="JSON"),
    Column("cron", String(255), nullable=False),
    Column("timezone", String(64), nullable=False),
    Column("catchup", String(16), nullable=False, comment="skip, latest or all"),
    Column("stack", String(255), nullable=False),
    Column("paused", Integer, nullable=False, server_default="0"),
    Column(
        "next_at", Float, nullable=False, comment="the earliest slot not yet fired (epoch seconds)"
    ),
    Column("last_exec_id", String(128), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
)

workers = Table(
    "workers",
    metadata,
    Column("id", String(255), primary_key=True),
    Column("stack", String(255), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    Column("counts", Text, nullable=False, server_default="{}", comment="JSON"),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True, comment="the token's public part"),
    Column("name", String(255), nullable=False, unique=True),
    Column("scope", String(16), nullable=False, comment="read, input, run or admin"),
    Column("secret_hash", String(64), nullable=False, comment="SHA-256 of the secret"),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=True),
    Column("revoked_at", Float, nullable=True),
    Column("last_used_at", Float, nullable=True),
)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("at", Float, nullable=False),
    Column("exec_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False, comment="status, wait or step"),
    Column("name", String(255), nullable=True),
    Column("status", String(16), nullable=True),
    Column("position", Integer, nullable=True),
    Index("ix_events_exec", "exec_id", "id"),
    sqlite_autoincrement=True,
)

blob_writes = Table(
    "blob_writes",
    metadata,
    Column("key", String(64), primary_key=True, comment="content key of the blob"),
    Column("written_at", Float, nullable=False, comment="when a writer last put or reused it"),
    comment="blobs written lately, whose rows may not be committed yet: retention keeps them",
)

store_identity = Table(
    "store_identity",
    metadata,
    Column("id", String(32), primary_key=True, comment="random, made once"),
    comment="one row: this metadata store's id",
)

run_output = Table(
    "run_output",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("exec_id", String(128), nullable=False),
    Column("run", Integer, nullable=False, comment="1 for the first run"),
    Column("at", Float, nullable=False),
    Column("text", Text, nullable=False, comment="stdout and stderr, as printed"),
    Index("ix_run_output_exec", "exec_id", "id"),
    comment="what runs printed, in chunks shipped about once a second",
)
