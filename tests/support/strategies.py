"""Hypothesis strategies for ModelTemplate manifests (test support; needs ``hypothesis``).

:func:`manifests` draws a plausible, valid manifest (optional fields omitted at random so
defaults are exercised, values up to the exact caps), then applies zero to two *edits*, each
setting one field to a value from a pool that mixes valid and invalid values (off-by-one caps,
malformed quantities, reserved env names, contradicting endpoint types, ...). Whether the result
is valid is left to the code under test: the models, the offline validator and the API server
must agree.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

from modeltemplate_operator import API_VERSION, KIND
from modeltemplate_operator.api.models import CPU_ONLY_CAPS, GPU_TYPE_CAPS, parse_quantity

__all__ = ["manifests", "valid_manifests", "EDITS"]

ENDPOINT_TYPES = ["SYNC", "ASYNC", "STREAMING", "BATCH"]
MODEL_TYPES = [
    "COMPLETION",
    "CHAT_COMPLETION",
    "AGENT",
    "EMBEDDING",
    "RERANKING",
    "GENERIC",
    "BUNDLE",
]
GPU_TYPES = list(GPU_TYPE_CAPS)

VC = ("spec", "vendorConfiguration")
BC = (*VC, "bundleConfig")
EC = (*VC, "endpointConfig")
FT = (*VC, "fineTuningJobBundleConfig")


def _cap_values(gpu_type: str | None) -> tuple[int, str, str]:
    caps = GPU_TYPE_CAPS.get(gpu_type or "", CPU_ONLY_CAPS)
    return int(caps.cpus), caps.memory, caps.storage


@st.composite
def _resources(draw: Any, *, with_workers: bool) -> dict[str, Any]:
    gpu_type = draw(st.one_of(st.none(), st.sampled_from(GPU_TYPES)))
    cpu_cap, mem_cap, storage_cap = _cap_values(gpu_type)
    res: dict[str, Any] = {}
    if gpu_type is not None:
        res["gpuType"] = gpu_type
        res["gpus"] = draw(st.sampled_from([1, 2, 8, 64]))
    elif draw(st.booleans()):
        res["gpus"] = 0
    optional = {
        "cpus": st.sampled_from(
            [1, 3, "500m", "1.5", "2", cpu_cap, f"{cpu_cap}000m", str(cpu_cap)]
        ),
        "memory": st.sampled_from(["512Mi", "8Gi", "1e9", 1073741824, mem_cap]),
        "storage": st.sampled_from(
            ["16Gi", "1Ti" if storage_cap == "1300Gi" else "600Gi", storage_cap]
        ),
    }
    if with_workers:
        max_workers = draw(st.sampled_from([0, 1, 4, 250]))
        optional["maxWorkers"] = st.just(max_workers)
        optional["minWorkers"] = st.integers(0, max_workers) if max_workers else st.just(0)
        optional["perWorker"] = st.sampled_from([1, 10, 100000])
        optional["highPriority"] = st.booleans()
    for key, strategy in optional.items():
        if draw(st.integers(0, 3)):
            res[key] = draw(strategy)
    if res.get("minWorkers", 0) > 1 and "maxWorkers" not in res:
        res["maxWorkers"] = max_workers  # the default (1) would be below minWorkers
    return res


@st.composite
def valid_manifests(draw: Any) -> dict[str, Any]:
    """Valid manifests only."""
    endpoint_type = draw(st.sampled_from(ENDPOINT_TYPES))
    bundle: dict[str, Any] = {
        "registry": draw(
            st.sampled_from(
                [
                    "nvcr.io",
                    "ghcr.io/my-org",
                    "localhost:5000",
                    "123.dkr.ecr.us-west-2.amazonaws.com",
                ]
            )
        ),
        "image": draw(st.sampled_from(["vllm/vllm-openai", "model", "a/b/c", "a__b", "a-b.c_d"])),
        "tag": draw(st.sampled_from(["v1", "latest", "1.5b-2024.10", "x" * 128, "_x"])),
    }
    if draw(st.booleans()):
        bundle["command"] = ["python", "-m", "server"]
    if draw(st.booleans()):
        bundle["env"] = draw(
            st.dictionaries(
                st.sampled_from(["MODEL_ID", "_HIDDEN", "lower_ok", "HF_HOME"]),
                st.sampled_from(["1", "x", ""]),
                max_size=3,
            )
        )
    if draw(st.booleans()):
        bundle["secretEnv"] = [
            {"name": "HF_TOKEN", "secretKeyRef": {"name": "hf-token", "key": "token"}}
        ]
    if draw(st.booleans()):
        bundle["imagePullSecrets"] = [{"name": "regcred"}]
    for key, pool in (
        ("readinessInitialDelaySeconds", [0, 120, 86400]),
        ("healthcheckRoute", ["/", "/health", "/a_b-c.d~e"]),
        ("predictRoute", ["/predict", "/v1/chat/completions"]),
        ("streamingPredictRoute", ["/stream", "/generate_streaming"]),
    ):
        if draw(st.booleans()):
            bundle[key] = draw(st.sampled_from(pool))
    vc: dict[str, Any] = {"bundleConfig": bundle}
    if draw(st.booleans()):
        vc["vendor"] = "LAUNCH"
    if draw(st.integers(0, 3)):
        ec = draw(_resources(with_workers=True))
        if draw(st.integers(0, 3)) == 0:
            ec["endpointType"] = endpoint_type
        vc["endpointConfig"] = ec
    if draw(st.integers(0, 2)) == 0:
        ft: dict[str, Any] = {"registry": "ghcr.io", "image": "trainer", "tag": "v2"}
        if draw(st.booleans()):
            ft["resources"] = draw(_resources(with_workers=False))
        if draw(st.booleans()):
            ft["trainingDatasetSchemaType"] = draw(
                st.sampled_from(["GENERATION", "RERANKING_QUESTIONS"])
            )
        if draw(st.booleans()):
            ft["mountLocation"] = "/cfg/config.json"
        vc["fineTuningJobBundleConfig"] = ft
    spec: dict[str, Any] = {
        "endpointType": endpoint_type,
        "modelType": draw(st.sampled_from(MODEL_TYPES)),
        "vendorConfiguration": vc,
    }
    if draw(st.booleans()):
        spec["endpointProtocol"] = draw(st.sampled_from(["SGP", "COHERE", "VLLM"]))
    for key in ("modelCreationParametersSchema", "modelRequestParametersSchema"):
        if draw(st.integers(0, 2)) == 0:
            names = draw(
                st.lists(
                    st.sampled_from(["temperature", "max_new_tokens", "_x", "Top_P"]),
                    unique=True,
                    max_size=3,
                )
            )
            spec[key] = {
                "parameters": [
                    {
                        "name": n,
                        "type": draw(
                            st.sampled_from(["str", "int", "float", "bool", "list", "dict"])
                        ),
                    }
                    | ({"required": draw(st.booleans())} if draw(st.booleans()) else {})
                    for n in names
                ]
            }
    longest = 58 if spec["endpointType"] == "BATCH" else 63  # a Job's pods are <name>-<index>
    name = draw(st.sampled_from(["llm", "chat-7b", "a" * longest, "e5-large-v2"]))
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": {"name": name}, "spec": spec}


_DELETE = object()


def _setter(path: tuple[Any, ...], pool: list[Any]) -> Callable[[dict[str, Any], Any], None]:
    def edit(manifest: dict[str, Any], draw: Any) -> None:
        node = manifest
        for part in path[:-1]:
            if part not in node:
                node[part] = {}
            node = node[part]
        value = draw(st.sampled_from(pool))
        if value is _DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)

    edit.__name__ = "set " + ".".join(map(str, path))
    return edit


def _over_cap(attr: str) -> Callable[[dict[str, Any], Any], None]:
    """Set cpus/memory/storage of endpointConfig just below, at or just above its cap."""

    def edit(manifest: dict[str, Any], draw: Any) -> None:
        ec = manifest["spec"]["vendorConfiguration"].setdefault("endpointConfig", {})
        caps = GPU_TYPE_CAPS.get(ec.get("gpuType", ""), CPU_ONLY_CAPS)
        cap = parse_quantity(getattr(caps, attr))
        delta = draw(st.sampled_from([-1, 0, 1]))
        ec[attr] = str(int(cap) + delta) if attr == "cpus" else f"{int(cap) + delta * 1024}"

    edit.__name__ = f"cap {attr}"
    return edit


def _add_param(kind: str) -> Callable[[dict[str, Any], Any], None]:
    def edit(manifest: dict[str, Any], draw: Any) -> None:
        schema = manifest["spec"].setdefault(kind, {"parameters": []})
        param = {
            "name": draw(
                st.sampled_from(["temperature", "top-p", "1st", "ok_name", "x" * 128, "x" * 129])
            ),
            "type": draw(st.sampled_from(["str", "dict", "string", "number"])),
        }
        schema["parameters"].append(param)

    edit.__name__ = f"add {kind} parameter"
    return edit


EDITS: list[Callable[[dict[str, Any], Any], None]] = [
    _setter(("metadata", "name"), ["ok", "a" * 64, "a" * 62, "Chat", "x.y", "9b", "a-"]),
    _setter(("spec", "endpointType"), ["SYNC", "ASYNC", "sync", "REALTIME", _DELETE]),
    _setter(("spec", "modelType"), ["GENERIC", "LLM", _DELETE]),
    _setter(("spec", "endpointProtocol"), ["VLLM", "OPENAI"]),
    _setter((*VC, "vendor"), ["LAUNCH", "SCALE"]),
    _setter(
        (*BC, "registry"),
        ["docker.io", "https://x.io", "a..b", "nvcr.io/", "host:99999", "r" * 256, _DELETE],
    ),
    _setter((*BC, "image"), ["ok/image", "Model", "a//b", "img:tag", "a--b", "-a", _DELETE]),
    _setter((*BC, "tag"), ["v1", ".x", "-x", "a b", "x" * 129, "", _DELETE]),
    _setter((*BC, "command"), [["a"], [], "python", [1], ["a\x00b"], ["x" * 32_001]]),
    _setter(
        (*BC, "env"),
        [
            {"OK": "1"},
            {"NUL": "a\x00b"},
            {"PORT": "1"},
            {"1BAD": "x"},
            {"MY-VAR": "x"},
            {"MODELTEMPLATE_X": "1"},
            {"KUBERNETES_X": "1"},
            {"HF_TOKEN": "x"},
            {"A": 1},
        ],
    ),
    _setter(
        (*BC, "secretEnv"),
        [
            [{"name": "HF_TOKEN", "secretKeyRef": {"name": "hf", "key": "t"}}],
            [{"name": "PORT", "secretKeyRef": {"name": "hf", "key": "t"}}],
            [
                {"name": "A", "secretKeyRef": {"name": "hf", "key": "t"}},
                {"name": "A", "secretKeyRef": {"name": "x", "key": "t"}},
            ],
            [{"name": "A", "secretKeyRef": {"name": "Bad_Name", "key": "t"}}],
            [{"name": "A", "secretKeyRef": {"name": "hf", "key": "a/b"}}],
            [{"name": "A"}],
        ],
    ),
    _setter(
        (*BC, "imagePullSecrets"),
        [[{"name": "regcred"}], [{"name": "Regcred"}], [{"name": "a"}, {"name": "a"}]],
    ),
    _setter((*BC, "readinessInitialDelaySeconds"), [0, 86400, -1, 86401, "120"]),
    _setter((*BC, "healthcheckRoute"), ["/", "/ok", "health", "/a b", "/x?y", "/x#y", ""]),
    _setter((*BC, "predictRoute"), ["/p", "p", "/" + "p" * 256]),
    _setter(
        (*EC, "cpus"),
        [
            1,
            "250m",
            "1.5",
            "0.001",
            0,
            -1,
            "0",
            "abc",
            "1e3",
            "2.5.1",
            2.5,
            "1 ",
            "+1",
            "1E",
            "1e-3",
        ],
    ),
    _setter((*EC, "memory"), ["1", "1Ki", "8Gi", "8GB", "0", "-1Gi", "1.5Gi", "8gi", ""]),
    _setter((*EC, "storage"), ["16Gi", "lots", "0Gi", 0, 1024]),
    _setter((*EC, "gpus"), [0, 1, 64, 65, -1, "1"]),
    _setter((*EC, "gpuType"), [*GPU_TYPES, "nvidia-h100", _DELETE]),
    _setter((*EC, "minWorkers"), [0, 1, 5, 250, 251, -1]),
    _setter((*EC, "maxWorkers"), [0, 1, 5, 250, 251, -1]),
    _setter((*EC, "perWorker"), [1, 0, -1, 100000, 100001]),
    _setter((*EC, "endpointType"), [*ENDPOINT_TYPES, "REALTIME"]),
    _setter((*EC, "highPriority"), [True, "true"]),
    _setter((*EC, "minWorker"), [1]),
    _over_cap("cpus"),
    _over_cap("memory"),
    _over_cap("storage"),
    _setter(
        (*FT, "resources"),
        [
            {"gpus": 1},
            {"gpus": 1, "gpuType": "nvidia-tesla-t4", "cpus": 64},
            {"cpus": "7"},
            {"memory": "31Gi"},
        ],
    ),
    _setter((*FT, "mountLocation"), ["/a/b.json", "a.json", "/a/", "//a"]),
    _setter((*FT, "trainingDatasetSchemaType"), ["GENERATION", "CHAT"]),
    _add_param("modelCreationParametersSchema"),
    _add_param("modelRequestParametersSchema"),
]


@st.composite
def manifests(draw: Any) -> dict[str, Any]:
    """Manifests near the edges of the rules: valid ones and ones breaking a rule or two."""
    manifest = draw(valid_manifests())
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
        edit = draw(st.sampled_from(EDITS))
        try:
            edit(manifest, draw)
        except (KeyError, TypeError, AttributeError):
            pass  # the edit does not apply to this manifest (e.g. no fine-tuning config)
    return manifest
