"""The operator's log level: Kopf's line per handled event only at debug, --log-level."""

from __future__ import annotations

import inspect
import logging
import types

import kopf
import pytest
from kopf._core.actions import execution, loggers
from kopf._core.intents import handlers

from modeltemplate_operator.__main__ import configure_logging, main
from modeltemplate_operator.controller.kopfadapt import PER_EVENT

pytestmark = pytest.mark.unit

TEMPLATE = {
    "apiVersion": "launch.modelops.dev/v1alpha1",
    "kind": "ModelTemplate",
    "metadata": {"name": "t", "namespace": "ns", "uid": "u"},
}


def test_kopf_still_writes_the_per_event_lines_this_matches():
    """Kopf writes ``f"{handler} succeeded."`` at INFO; its handlers and indexers name
    themselves as PER_EVENT expects (activities do not match: their lines stay)."""
    assert 'logger.info(f"{handler} succeeded.")' in inspect.getsource(execution)
    one = types.SimpleNamespace(id="modeltemplates_event")
    watcher = next(
        cls
        for _, cls in inspect.getmembers(execution, inspect.isclass)
        if cls.__dict__.get("__str__") and "Handler {" in inspect.getsource(cls.__str__)
    )
    assert PER_EVENT.match(f"{watcher.__str__(one)} succeeded.")
    assert PER_EVENT.match(f"{handlers.IndexingHandler.__str__(one)} succeeded.")
    assert not PER_EVENT.match(f"{handlers.ActivityHandler.__str__(one)} succeeded.")


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    objects = logging.getLogger("kopf.objects")
    saved_filters = list(objects.filters)
    yield
    root.setLevel(saved[0])
    root.handlers[:] = saved[1]
    objects.filters[:] = saved_filters


def _emit(level: str, capsys) -> str:
    configure_logging(level, "text")  # Kopf's handler on the (captured) stderr
    capsys.readouterr()
    obj = loggers.ObjectLogger(body=TEMPLATE, settings=kopf.OperatorSettings())
    obj.info("Handler 'modeltemplates_event' succeeded.")
    obj.info("Indexer 'modeltemplates_idx' succeeded.")
    obj.info("Handler 'modeltemplates_event' succeeded. But not only.")
    obj.warning("Handler 'modeltemplates_event' failed temporarily: boom")
    logging.getLogger("kopf.activities.startup").info("Activity 'startup' succeeded.")
    logging.getLogger("modeltemplate_operator.controller.handlers").info("configuration: x")
    return capsys.readouterr().err


def test_info_leaves_out_the_per_event_lines(capsys, restore_logging):
    err = _emit("info", capsys)
    assert "Handler 'modeltemplates_event' succeeded.\n" not in err
    assert "Indexer 'modeltemplates_idx' succeeded." not in err
    # Everything else stays: other INFO lines of objects, warnings, activities, our own.
    assert "succeeded. But not only." in err
    assert "failed temporarily: boom" in err
    assert "Activity 'startup' succeeded." in err  # what tests and people wait for
    assert "configuration: x" in err


def test_debug_shows_them_as_debug_lines(capsys, caplog, restore_logging):
    err = _emit("debug", capsys)
    assert "Handler 'modeltemplates_event' succeeded." in err
    assert "Indexer 'modeltemplates_idx' succeeded." in err
    levels = {r.getMessage(): r.levelname for r in caplog.records}
    assert levels["Indexer 'modeltemplates_idx' succeeded."] == "DEBUG"
    assert levels["Activity 'startup' succeeded."] == "INFO"


def test_warning_keeps_warnings_only(capsys, restore_logging):
    err = _emit("warning", capsys)
    assert "failed temporarily: boom" in err
    assert "succeeded" not in err and "configuration: x" not in err


@pytest.mark.parametrize(
    ("argv", "env"), [(["--log-level", "loud"], None), ([], "loud")], ids=["flag", "env"]
)
def test_an_unknown_log_level_is_refused(monkeypatch, capsys, argv, env):
    if env:
        monkeypatch.setenv("MODELTEMPLATE_LOG_LEVEL", env)
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "loud" in capsys.readouterr().err
