"""The SGP routes, one module per resource; each is a module-level ``router`` whose routes take
the caller (:data:`..caller.CallerDep`) and, for lists, the page (:data:`..calls.PageQuery`)."""

from . import deployments, finetuning, models, serving, tasks, templates

#: Every router the gateway serves, in the order of ``/openapi.json``.
ROUTERS = (
    templates.router,
    models.router,
    deployments.router,
    serving.router,
    finetuning.router,
    tasks.router,
)
