"""The operator's I/O: server-side apply, one reconcile per owner, the work queue and its workers, the Kopf wiring and its adaptations, metrics."""
