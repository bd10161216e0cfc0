"""Log lines of the gateway and the forwarder: JSON objects as the operator writes them."""

from __future__ import annotations

import json
import logging
import subprocess
import sys


def test_json_lines_by_default_and_text_on_request():
    code = (
        "import logging, sys\n"
        "from modeltemplate_operator import logs\n"
        "logs.configure('info', sys.argv[1])\n"
        "logging.getLogger('modeltemplate_operator.gateway').info('watch cache: %d listed', 3)\n"
        "logging.getLogger('x').debug('not at info')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, "json"], capture_output=True, text=True, check=True
    ).stderr
    [line] = out.splitlines()
    record = json.loads(line)
    assert {k: record[k] for k in ("severity", "logger", "message")} == {
        "severity": "info",
        "logger": "modeltemplate_operator.gateway",
        "message": "watch cache: 3 listed",
    }
    assert record["timestamp"].endswith("+00:00")
    text = subprocess.run(
        [sys.executable, "-c", code, "text"], capture_output=True, text=True, check=True
    ).stderr
    assert text.strip().endswith("INFO modeltemplate_operator.gateway: watch cache: 3 listed")


def test_an_exception_is_one_line():
    from modeltemplate_operator.logs import JsonFormatter

    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    line = JsonFormatter().format(record)
    assert "\n" not in line and "ValueError: boom" in json.loads(line)["exc_info"]
