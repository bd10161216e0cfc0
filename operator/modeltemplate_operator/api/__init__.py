"""The API: the resources' schema (pydantic, the one source of the CRDs), the table of kinds, CRD generation, offline validation, SGP conversion and the parameter checker. Pure."""
