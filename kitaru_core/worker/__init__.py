"""The worker: the service that makes a stack run by itself.

``service.py`` is the loop (``kitaru worker``); each pass recovers executions whose
process died, fires due timers and expired waits, starts due schedule slots, admits
queued executions, and prunes old ones. ``schedules.py`` is cron arithmetic and the
schedule operations; ``retention.py`` deletes executions and unreferenced blobs.
"""
