"""The SGP REST API gateway: SGP's routes served from the project's resources.

- :mod:`.routers` — one module per resource (templates, models, deployments, serving,
  fine-tuning jobs, tasks), each a module-level router.
- :mod:`.caller` — the dependency every route takes: the key proven first, the account
  policy, one lookup / list / create / delete for every kind.
- :mod:`.calls` — bodies read under their limits, the account header, paging.
- :mod:`.access` — who the caller is and what RBAC lets it read, cached for seconds.
- :mod:`.sgp` — pure: template objects <-> SGP JSON, paging order, SGP's error bodies.
- :mod:`.schemas`, :mod:`.openapi` — the wire types of ``/openapi.json``.
- :mod:`.kubeapi`, :mod:`.store` — the API-server client; the template watch cache.
- :mod:`.endpoints` — where an endpoint answers (its Service).
- :mod:`.app`, :mod:`.server`, :mod:`.__main__` — the application and the process.
"""
