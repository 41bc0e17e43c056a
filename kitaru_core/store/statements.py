"""INSERT statements shared by the stores that commit rows of several tables together."""

from __future__ import annotations

from kitaru_core.store.records import ArtifactRecord, JournalEntry, LLMCallRecord

INSERT_ARTIFACT = (
    f"INSERT INTO artifacts ({ArtifactRecord.COLUMNS}) VALUES (:id, :exec_id, :name, :role, "
    ":key, :serializer, :type_ref, :size, :created_at, :artifact_type, :position, :tags, :inline, "
    ":signature)"
)
INSERT_ENTRY = (
    f"INSERT INTO journal ({JournalEntry.COLUMNS}) VALUES (:exec_id, :position, :name, "
    ":status, :started_at, :ended_at, :kind, :output_artifact_id, :attempts, :error, :metadata)"
)
INSERT_LLM_CALL = (
    f"INSERT INTO llm_calls ({LLMCallRecord.COLUMNS}) VALUES (:id, :exec_id, :position, "
    ":checkpoint, :alias, :model, :prompt_artifact_id, :response_artifact_id, :input_tokens, "
    ":output_tokens, :cost_usd, :latency, :attempts, :error, :created_at)"
)
