"""Staged rollout of a template's change to its models (pure).

A model runs the template generation named in its status (``templateGeneration``). When the
template changes, its models move to the new generation a few at a time: at most
``maxUnavailable`` of them (the operator setting ``modelRollout.maxUnavailable``, or the
template's annotation :data:`MAX_UNAVAILABLE_ANNOTATION`; default 1) are on the new generation
and not Ready yet. The others wait, their workloads untouched, in name order. A model that
fails on the new generation (Ready=False for a reason that needs a person: it is Stalled) stops
the wave; the template's status names it (``models.rolloutBlockedBy``) until it recovers or is
fixed. A model that has never run (no ``templateGeneration``) starts at once.

The reconciler holds what it decided but the watch cache does not show yet (a model that was
just allowed to move) in :class:`Claims`, so two workers never move two models for one slot.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..observed import STALLED_REASONS

MAX_UNAVAILABLE_ANNOTATION = "launch.modelops.dev/model-rollout-max-unavailable"
#: Names of waiting models the template's status lists (the count is always complete).
LISTED = 20


@dataclass(frozen=True)
class ModelState:
    """What the rollout reads of one model: the generation it runs and how it runs it."""

    name: str
    template_generation: int | None
    ready: bool
    stalled: bool

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> ModelState:
        status = body.get("status") or {}
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        ready = conditions.get("Ready") or {}
        current = status.get("observedGeneration") == body["metadata"].get("generation")
        return cls(
            name=body["metadata"]["name"],
            template_generation=status.get("templateGeneration"),
            ready=current and ready.get("status") == "True",
            stalled=ready.get("status") == "False" and ready.get("reason") in STALLED_REASONS,
        )


def is_waiting(body: Mapping[str, Any]) -> bool:
    """Whether a model waits for its turn (``UpToDate=False``)."""
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "UpToDate" and c.get("status") == "False" for c in conditions)


def next_in_line(family: Iterable[Mapping[str, Any]], changed: str, limit: int) -> list[str]:
    """The models of a family that may take a slot freed by the change of the model ``changed``:
    the first ``limit`` waiting ones in name order (the wave's order), besides itself. Only they
    need a look, so a step of the wave costs ``limit`` reconciles, not one per waiting model,
    and a quiet family costs nothing. (A model allowed to move whose status does not show it yet
    may still look waiting; it holds a slot then, and the eligible ones are still among the
    first ``limit``.)"""
    waiting = sorted(
        m["metadata"]["name"] for m in family if m["metadata"]["name"] != changed and is_waiting(m)
    )
    return waiting[:limit]


def max_unavailable(template: Mapping[str, Any], default: int) -> int:
    """The template's annotation when it holds a positive integer, else the setting."""
    raw = ((template.get("metadata") or {}).get("annotations") or {}).get(
        MAX_UNAVAILABLE_ANNOTATION
    )
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    return value if value >= 1 else default


@dataclass(frozen=True)
class Turn:
    """May a model render its template's current generation now?"""

    move: bool
    #: Why not (the model keeps its workload as it is).
    waiting_for: str = ""


def turn(
    name: str,
    generation: int,
    models: Iterable[ModelState],
    limit: int,
    moving: Iterable[str] = (),
) -> Turn:
    """Whether the model ``name`` may move to the template's ``generation``, given every model of
    the template as cached and the ones ``moving`` there already (claimed, not yet cached)."""
    states = {m.name: m for m in models}
    me = states.get(name)
    if me is None or me.template_generation is None or me.template_generation >= generation:
        return Turn(True)  # new, or already there: render the current generation
    moving = set(moving)
    if name in moving:
        return Turn(True)  # on its way already (its status does not show it yet)
    arrived = [m for m in states.values() if m.template_generation == generation]
    failed = sorted(m.name for m in arrived if m.stalled)
    if failed:
        return Turn(False, f"the rollout stopped at model {failed[0]}, which failed on it")
    busy = {m.name for m in arrived if not m.ready} | (moving - {name})
    outdated = sorted(
        m.name
        for m in states.values()
        if m.template_generation is not None
        and m.template_generation < generation
        and m.name not in moving
    )
    slots = limit - len(busy)
    if name in outdated[: max(slots, 0)]:
        return Turn(True)
    # One message for the whole wave (not the names of the moving ones): a waiting model's
    # status changes when its turn comes, not at every step of the others.
    return Turn(False, f"at most {limit} of the template's models roll out at a time")


def summary(generation: int, models: Iterable[ModelState]) -> dict[str, Any]:
    """The ``models`` field of a template's status."""
    states = sorted(models, key=lambda m: m.name)
    outdated = [m.name for m in states if m.template_generation != generation]
    updated = [m for m in states if m.template_generation == generation]
    out: dict[str, Any] = {
        "total": len(states),
        "updated": len(updated),
        "ready": sum(m.ready for m in updated),
    }
    if outdated:
        out["outdated"] = outdated[:LISTED]
    failed = [m.name for m in updated if m.stalled]
    if failed and outdated:
        out["rolloutBlockedBy"] = failed[0]
    return out


class Claims:
    """Models allowed to move to a generation whose status does not show it yet, per template."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._moving: dict[tuple[str, str], dict[str, int]] = {}

    def decide(
        self,
        template: tuple[str, str],
        name: str,
        generation: int,
        models: list[ModelState],
        limit: int,
    ) -> Turn:
        """:func:`turn` for one model, and its claim recorded when it moves (thread-safe)."""
        with self._lock:
            claimed = self._moving.setdefault(template, {})
            cached = {m.name: m.template_generation for m in models}
            for model, gen in list(claimed.items()):
                if gen != generation or (cached.get(model) or 0) >= gen or model not in cached:
                    del claimed[model]  # seen there (or superseded, or gone)
            result = turn(name, generation, models, limit, claimed)
            state = next((m for m in models if m.name == name), None)
            outdated = state is not None and (state.template_generation or generation) < generation
            if result.move and outdated:
                claimed[name] = generation
            if not claimed:
                self._moving.pop(template, None)
            return result
