"""Enums of the ModelTemplate API (values and descriptions from the SGP API).

:class:`~.gpus.GpuType` is not here: it derives from the GPU table in ``gpus.py``.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EndpointType",
    "ModelType",
    "EndpointProtocol",
    "Vendor",
    "TrainingDatasetSchemaType",
    "ParameterType",
]


class EndpointType(StrEnum):
    """An enum representing the different types of model endpoint types supported.

    Attributes: SYNC: Denotes that the model endpoint type is sync. ASYNC: Denotes that the model
    endpoint type is async. STREAMING: Denotes that the model endpoint type is streaming. BATCH:
    Denotes that the model endpoint type is batch.
    """

    SYNC = "SYNC"
    ASYNC = "ASYNC"
    STREAMING = "STREAMING"
    BATCH = "BATCH"


class ModelType(StrEnum):
    """An enum representing the different types of models supported.

    Attributes: COMPLETION: Denotes that the model type is completion. CHAT_COMPLETION: Denotes
    that the model type is chat completion. AGENT: Denotes that the model type is agent.
    EMBEDDING: Denotes that the model type is embedding. RERANKING: Denotes that the model type
    is reranking. GENERIC: Denotes that the model type is generic. BUNDLE: Not to be used
    directly - type to surface a model bundle in the UI.
    """

    COMPLETION = "COMPLETION"
    CHAT_COMPLETION = "CHAT_COMPLETION"
    AGENT = "AGENT"
    EMBEDDING = "EMBEDDING"
    RERANKING = "RERANKING"
    GENERIC = "GENERIC"
    BUNDLE = "BUNDLE"


class EndpointProtocol(StrEnum):
    """The name of the calling convention expected by the Launch model endpoint."""

    SGP = "SGP"
    COHERE = "COHERE"
    VLLM = "VLLM"


class Vendor(StrEnum):
    """The vendor of the model template."""

    LAUNCH = "LAUNCH"


class TrainingDatasetSchemaType(StrEnum):
    """Optionally set required training and validation dataset schema."""

    GENERATION = "GENERATION"
    RERANKING_QUESTIONS = "RERANKING_QUESTIONS"


class ParameterType(StrEnum):
    """Type of a template parameter (Python type names as used by SGP: str, int, float, bool,
    list, dict)."""

    STR = "str"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    LIST = "list"
    DICT = "dict"
