"""Staged rollout of a template's change to its models: who moves, who waits, what the template
says (pure)."""

from __future__ import annotations

import pytest

from modeltemplate_operator.plan.rollout import (
    MAX_UNAVAILABLE_ANNOTATION,
    Claims,
    ModelState,
    max_unavailable,
    next_in_line,
    summary,
    turn,
)

pytestmark = pytest.mark.unit


def state(name, gen, ready=True, stalled=False):
    return ModelState(name, gen, ready, stalled)


def test_new_models_and_models_already_there_render_at_once():
    models = [state("a", None, ready=False), state("b", 2, ready=False)]
    assert turn("a", 2, models, 1).move
    assert turn("b", 2, models, 1).move


def test_one_model_at_a_time_in_name_order():
    models = [state("c", 1), state("a", 1), state("b", 1)]
    assert turn("a", 2, models, 1).move
    assert not turn("b", 2, models, 1).move
    assert not turn("c", 2, models, 1).move
    # a arrived but is not Ready yet: nobody else moves.
    models = [state("a", 2, ready=False), state("b", 1), state("c", 1)]
    waiting = turn("b", 2, models, 1)
    assert not waiting.move and "at most 1 " in waiting.waiting_for
    # a Ready on the new generation: b's turn, then c's.
    models = [state("a", 2), state("b", 1), state("c", 1)]
    assert turn("b", 2, models, 1).move and not turn("c", 2, models, 1).move


def test_max_unavailable_moves_that_many():
    models = [state(n, 1) for n in "abcd"]
    assert [n for n in "abcd" if turn(n, 2, models, 2).move] == ["a", "b"]


def test_a_failed_model_stops_the_wave():
    models = [state("a", 2, ready=False, stalled=True), state("b", 1), state("c", 1)]
    stopped = turn("b", 2, models, 3)
    assert not stopped.move and "model a" in stopped.waiting_for
    assert summary(2, models) == {
        "total": 3,
        "updated": 1,
        "ready": 0,
        "outdated": ["b", "c"],
        "rolloutBlockedBy": "a",
    }


def test_summary_of_a_finished_rollout_lists_nothing_waiting():
    assert summary(2, [state("a", 2), state("b", 2, ready=False)]) == {
        "total": 2,
        "updated": 2,
        "ready": 1,
    }


def test_claims_keep_two_workers_from_moving_two_models_for_one_slot():
    claims = Claims()
    models = [state("a", 1), state("b", 1)]
    assert claims.decide(("ns", "t"), "a", 2, models, 1).move
    # The cache does not show a on generation 2 yet: b still waits for it.
    assert not claims.decide(("ns", "t"), "b", 2, models, 1).move
    # a reconciled again before its status shows it moved: it keeps moving.
    assert claims.decide(("ns", "t"), "a", 2, models, 1).move
    # The cache shows a there, Ready: b moves, the claim on a is gone.
    models = [state("a", 2), state("b", 1)]
    assert claims.decide(("ns", "t"), "b", 2, models, 1).move
    # A claim for a superseded generation does not count.
    models = [state("a", 2), state("b", 2)]
    assert claims.decide(("ns", "t"), "a", 3, models, 1).move
    assert not claims.decide(("ns", "t"), "b", 3, models, 1).move
    assert claims.decide(("ns", "t"), "b", 4, models, 1).move is False  # a moves first at 4
    assert claims.decide(("ns", "t"), "a", 4, models, 1).move


def test_model_state_reads_the_status_for_the_models_own_generation():
    body = {
        "metadata": {"name": "m", "generation": 3},
        "status": {
            "observedGeneration": 3,
            "templateGeneration": 5,
            "conditions": [{"type": "Ready", "status": "True", "reason": "WorkersReady"}],
        },
    }
    assert ModelState.of(body) == ModelState("m", 5, True, False)
    body["metadata"]["generation"] = 4  # its own spec changed since: not Ready for it yet
    assert not ModelState.of(body).ready
    body["status"]["conditions"] = [
        {"type": "Ready", "status": "False", "reason": "ImagePullBackOff"}
    ]
    assert ModelState.of(body).stalled


@pytest.mark.parametrize(
    ("annotation", "expected"), [(None, 1), ("3", 3), ("0", 1), ("many", 1), ("-2", 1)]
)
def test_max_unavailable_from_the_annotation_or_the_setting(annotation, expected):
    meta = {"annotations": {MAX_UNAVAILABLE_ANNOTATION: annotation}} if annotation else {}
    assert max_unavailable({"metadata": meta}, 1) == expected


def body(name, waiting=True):
    status = "False" if waiting else "True"
    return {
        "metadata": {"name": name},
        "status": {"conditions": [{"type": "UpToDate", "status": status}]},
    }


def test_a_step_of_the_wave_wakes_only_who_may_take_the_slot():
    family = [body(n) for n in "edcb"] + [body("a", waiting=False)]
    assert next_in_line(family, "a", 1) == ["b"]
    assert next_in_line(family, "a", 2) == ["b", "c"]
    assert next_in_line(family, "b", 2) == ["c", "d"]  # never itself
    assert next_in_line([body("a", waiting=False)], "b", 3) == []


def test_the_waiting_message_holds_still_while_others_move():
    """The message is in the waiting models' status: one that changed at every step would
    rewrite every waiting model's status at every step of the wave."""
    one = turn("c", 2, [state("a", 2, ready=False), state("b", 1), state("c", 1)], 1)
    two = turn("c", 2, [state("a", 2), state("b", 2, ready=False), state("c", 1)], 1)
    assert not one.move and not two.move and one.waiting_for == two.waiting_for
