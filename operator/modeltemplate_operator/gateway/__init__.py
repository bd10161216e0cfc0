"""The SGP REST API gateway: ``/v4/model-templates`` served from ModelTemplate resources.

- :mod:`.sgp` — pure: ModelTemplate object <-> SGP JSON (through :mod:`..convert`), paging,
  error bodies in SGP's shape, API-server errors translated to SGP field paths.
- :mod:`.kubeapi` — the HTTP client to the API server: the caller's token on every call made
  for a caller, the gateway's own credentials only for its watch.
- :mod:`.store` — the watch cache (ids -> templates, sorted pages) and the loop that fills it.
- :mod:`.access` — who the caller is and what RBAC lets them read, cached for seconds.
- :mod:`.openapi` — the SGP shapes in ``/openapi.json``, generated from the models.
- :mod:`.app` — the FastAPI routes; :mod:`.__main__` — the ``modeltemplate-gateway`` command.
"""
