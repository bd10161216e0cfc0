"""A Model checked against its template and its parameters turned into ``main``'s env (pure).

- :func:`check_model` lists every problem of a Model with respect to its template, one
  ``{"field", "problem"}`` dict each (the shape :mod:`.parameters` reports): the creation
  parameters checked by the one parameter checker (:class:`~.parameters.ParameterSchema`, same
  rules and messages as the forwarder's request check) at ``spec.creationParameters``, a
  ``spec.modelType`` that contradicts the template's, and worker overrides that leave
  ``minWorkers > maxWorkers`` once combined with the template's values.
- :func:`parameter_env` is the injection into ``main``: one variable per parameter named by
  :func:`param_env_name` (``MODEL_PARAM_`` + the name upper-cased, any character other than
  ``A-Z``, ``0-9`` and ``_`` replaced by ``_``), strings as they are, ``bool`` as ``true``/
  ``false``, numbers as JSON, ``list``/``dict`` JSON-encoded; and the whole object as JSON in
  :data:`PARAMS_ENV`. ``$(MODEL_PARAM_X)`` in the template's ``command`` is expanded by
  Kubernetes itself, as for any container env variable.
- :func:`is_pure_template`: a template whose schema has required creation parameters cannot run
  without a Model, so it renders nothing itself.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..api.models import Model, ModelDeployment, ModelSpec, ModelTemplate, ModelTemplateSpec
from ..api.parameters import ParameterSchema
from ..limits import MAX_EXEC_STRING_LENGTH, MAX_PARAMETER_NAME_LENGTH, truncate

__all__ = [
    "PARAMS_ENV",
    "PARAM_ENV_PREFIX",
    "PARAMETERS_FIELD",
    "OVERRIDES",
    "apply_overrides",
    "check_model",
    "creation_schema",
    "is_pure_template",
    "param_env_name",
    "parameter_env",
]

PARAM_ENV_PREFIX = "MODEL_PARAM_"
#: The variable carrying the whole creation-parameters object as JSON.
PARAMS_ENV = "MODEL_PARAMS"
#: Where a Model's creation parameters live (the path named in messages).
PARAMETERS_FIELD = "spec.creationParameters"

_NOT_ENV_CHAR = re.compile(r"[^A-Z0-9_]")


def creation_schema(template: ModelTemplate) -> ParameterSchema:
    return ParameterSchema.from_model(template.spec.model_creation_parameters_schema)


def is_pure_template(template: ModelTemplate) -> bool:
    """Whether the template declares required creation parameters (so only Models run it)."""
    return creation_schema(template).has_required


def param_env_name(name: str) -> str:
    return PARAM_ENV_PREFIX + _NOT_ENV_CHAR.sub("_", name.upper())


def _env_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def parameter_env(values: dict[str, Any] | None) -> list[dict[str, str]]:
    """The env entries of ``main`` for the creation parameters (sorted by variable name, then
    the whole object); null values are left out as absent."""
    values = values or {}
    per_param = {
        param_env_name(name): _env_value(value)
        for name, value in values.items()
        if value is not None
    }
    env = [{"name": k, "value": per_param[k]} for k in sorted(per_param)]
    whole = {k: v for k, v in values.items() if v is not None}
    env.append(
        {"name": PARAMS_ENV, "value": json.dumps(whole, separators=(",", ":"), sort_keys=True)}
    )
    return env


def check_exec_rules(values: dict[str, Any]) -> list[dict[str, str]]:
    """The creation parameters as ``main``'s env must pass exec(2), as a template's env must:
    no NUL character and at most MAX_EXEC_STRING_LENGTH characters, for each variable and for
    the whole object (``MODEL_PARAMS``); each problem named at its parameter."""
    errors = []
    for name, value in values.items():
        if value is None:
            continue
        path = f"{PARAMETERS_FIELD}.{name}"
        if "\x00" in name or len(name) > MAX_PARAMETER_NAME_LENGTH:
            errors.append(
                {"field": f"{PARAMETERS_FIELD}[{truncate(name, 40)!r}]", "problem": _EXEC_RULE}
            )
            continue
        text = _env_value(value)
        if "\x00" in text:
            errors.append(
                {
                    "field": path,
                    "problem": "contains a NUL character, which exec(2) "
                    "cannot pass to the container",
                }
            )
        elif len(text) > MAX_EXEC_STRING_LENGTH:
            errors.append(
                {
                    "field": path,
                    "problem": f"is {len(text)} characters as "
                    f"{param_env_name(name)}, at most {MAX_EXEC_STRING_LENGTH}",
                }
            )
    if not errors:
        whole = parameter_env(values)[-1]["value"]
        if len(whole) > MAX_EXEC_STRING_LENGTH:
            errors.append(
                {
                    "field": PARAMETERS_FIELD,
                    "problem": f"is {len(whole)} characters as "
                    f"JSON in {PARAMS_ENV}, at most {MAX_EXEC_STRING_LENGTH}",
                }
            )
    return errors


_EXEC_RULE = f"a parameter name is at most {MAX_PARAMETER_NAME_LENGTH} characters, without NUL"


#: The endpoint settings a Model may override (snake_case names of both models).
OVERRIDES = ("min_workers", "max_workers", "per_worker", "high_priority")


def apply_overrides(spec: ModelTemplateSpec, model: ModelSpec) -> ModelTemplateSpec:
    """The template's spec with the model's endpoint overrides applied (nothing else changes)."""
    changes = {k: getattr(model, k) for k in OVERRIDES if getattr(model, k) is not None}
    if not changes:
        return spec
    vendor = spec.vendor_configuration
    endpoint = vendor.endpoint_config.model_copy(update=changes)
    return spec.model_copy(
        update={"vendor_configuration": vendor.model_copy(update={"endpoint_config": endpoint})}
    )


def deployment_as_model(deployment: ModelDeployment, model: Model) -> Model:
    """A deployment as the Model it runs: the Model's spec with the deployment's creation
    parameters merged over the Model's and its worker settings, named after the deployment.
    The one checker and the one plan then treat it as any Model (same fields, same messages)."""
    spec = deployment.spec
    changes = {k: getattr(spec, k) for k in OVERRIDES if getattr(spec, k) is not None}
    params = {**(model.spec.creation_parameters or {}), **(spec.creation_parameters or {})}
    merged = model.spec.model_copy(update={**changes, "creation_parameters": params or None})
    return model.model_copy(update={"metadata": deployment.metadata, "spec": merged})


def check_model(model: Model, template: ModelTemplate) -> list[dict[str, str]]:
    """Every problem of ``model`` against ``template`` (empty when it can be rendered)."""
    errors: list[dict[str, str]] = []
    spec = model.spec
    if spec.model_type is not None and spec.model_type != template.spec.model_type:
        errors.append(
            {
                "field": "spec.modelType",
                "problem": (
                    f"{spec.model_type} contradicts the template's modelType "
                    f"{template.spec.model_type}"
                ),
            }
        )
    values = spec.creation_parameters or {}
    errors.extend(creation_schema(template).check_values(values, PARAMETERS_FIELD))
    if not errors:  # a value nested too deep is not encoded
        errors.extend(check_exec_rules(values))
    ec = apply_overrides(template.spec, spec).endpoint_config
    lo, hi = ec.min_workers, ec.max_workers
    if lo > hi:
        errors.append(
            {
                "field": "spec.minWorkers" if spec.min_workers is not None else "spec.maxWorkers",
                "problem": f"minWorkers ({lo}) must be <= maxWorkers ({hi}) with the template's "
                "values",
            }
        )
    return errors
