"""The metadata store: executions, their journals and artifact records."""
