"""The durable engine: flows, checkpoints and the journal that makes them resumable."""
