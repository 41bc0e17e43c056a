"""INSERT statements shared by the stores that commit rows of several tables together."""

from __future__ import annotations

from kitaru_core.store.records import ArtifactRecord, JournalEntry

INSERT_ARTIFACT = (
    f"INSERT INTO artifacts ({ArtifactRecord.COLUMNS}) VALUES (:id, :exec_id, :name, :role, "
    ":key, :serializer, :type_ref, :size, :created_at, :artifact_type, :position, :tags, :inline)"
)
INSERT_ENTRY = (
    f"INSERT INTO journal ({JournalEntry.COLUMNS}) VALUES (:exec_id, :position, :name, "
    ":status, :started_at, :ended_at, :kind, :output_artifact_id, :attempts, :error, :metadata)"
)
