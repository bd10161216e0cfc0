"""The contract between what ``render`` puts in a pod, the ``http-forwarder`` sidecar that runs
there, and what ``status`` advertises: ports, routes, flag names and metric names (pure).

All three import these names instead of repeating them; ``tests/forwarder/test_contract.py``
starts the forwarder with exactly the arguments ``render`` emits for every sample.
"""

from __future__ import annotations

#: The model container (``main``) listens here, as Launch's do.
MAIN_PORT = 5005
#: The forwarder listens here; the Service's port 80 targets it.
FORWARDER_PORT = 5000
SERVICE_PORT = 80
FORWARDER_COMMAND = "modeltemplate-forwarder"

# The forwarder's public routes (its own; the model's routes are flags).
PREDICT_PATH = "/predict"
STREAM_PATH = "/stream"
READY_PATH = "/readyz"
LIVE_PATH = "/healthz"
METRICS_PATH = "/metrics"

#: Requests in flight in one forwarder: what the autoscalers scale on.
IN_FLIGHT_METRIC = "modeltemplate_forwarder_requests_in_flight"
#: The same figure as the custom-metrics API serves it to the HPA (deploy/prometheus-adapter/).
HPA_METRIC = "request-concurrency-average"

# Flags render passes to the forwarder (each also readable as FORWARDER_<NAME> there).
PORT_FLAG = "port"
UPSTREAM_FLAG = "upstream"
PREDICT_ROUTE_FLAG = "predict-route"
STREAMING_PREDICT_ROUTE_FLAG = "streaming-predict-route"
HEALTHCHECK_ROUTE_FLAG = "healthcheck-route"
PROTOCOL_FLAG = "protocol"
PER_WORKER_FLAG = "per-worker"
REQUEST_PARAMETERS_SCHEMA_FLAG = "request-parameters-schema"
#: Optional for render (the forwarder's default, 5 s, fits terminationGracePeriodSeconds 600 with
#: the default --grace-period-seconds 580): how long to keep accepting after SIGTERM.
SHUTDOWN_DELAY_FLAG = "shutdown-delay-seconds"
#: ``sync`` (HTTP in front of ``main``) or ``async`` (consume the endpoint's task queue).
MODE_FLAG = "mode"
MODE_SYNC = "sync"
MODE_ASYNC = "async"
# Async mode only: the broker (a redis:// or rediss:// URL without the password), the queue
# (tasks.queue_name), and grace/visibility/TTL settings.
BROKER_URL_FLAG = "broker-url"
QUEUE_FLAG = "queue"
RESULT_TTL_FLAG = "result-ttl-seconds"
VISIBILITY_TIMEOUT_FLAG = "visibility-timeout-seconds"
GRACE_PERIOD_FLAG = "grace-period-seconds"
#: The broker's password reaches the forwarder only as this variable (from a Secret).
BROKER_PASSWORD_ENV = "FORWARDER_BROKER_PASSWORD"
#: Async pods get as long as Launch gives them to finish their tasks on termination.
ASYNC_TERMINATION_GRACE_SECONDS = 1800

# Async-mode metrics.
QUEUE_DEPTH_METRIC = "modeltemplate_forwarder_queue_depth"
TASKS_METRIC = "modeltemplate_forwarder_tasks_total"
TASK_DURATION_METRIC = "modeltemplate_forwarder_task_duration_seconds"
TASKS_IN_FLIGHT_METRIC = "modeltemplate_forwarder_tasks_in_flight"


def flag(name: str, value: object) -> str:
    return f"--{name}={value}"
