"""The no-op check of apply: does the live object already hold every rendered field?"""

import pytest

from modeltemplate_operator.controller.apply import is_subset


@pytest.mark.parametrize(
    "want, have, same",
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # server defaults are extra fields
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": "x"}}, {"a": {}}, False),
        ({"limits": {"cpu": "3"}}, {"limits": {"cpu": "3"}}, True),
        ({"limits": {"memory": "2048Gi"}}, {"limits": {"memory": "2Ti"}}, True),  # by value
        ({"requests": {"cpu": "500m"}}, {"requests": {"cpu": "0.5"}}, True),
        ({"requests": {"cpu": "1"}}, {"requests": {"cpu": "2"}}, False),
        ({"target": {"averageValue": "1k"}}, {"target": {"averageValue": "1000"}}, True),
        # Elsewhere a string is a string: a manual edit to an equal quantity is still an edit.
        (
            {"env": [{"name": "N", "value": "1000"}]},
            {"env": [{"name": "N", "value": "1e3"}]},
            False,
        ),
        ({"args": ["2"]}, {"args": ["2.0"]}, False),
        ({"memory": "2048Gi"}, {"memory": "2Ti"}, False),
        ({"ports": [{"port": 80}]}, {"ports": [{"port": 80, "protocol": "TCP"}]}, True),
        ({"args": ["a", "b"]}, {"args": ["a"]}, False),  # lists compare whole
        ({"args": ["a"]}, {"args": ["a", "b"]}, False),
        ({"image": "x:1"}, {"image": "x:2"}, False),
        ({"flag": True}, {"flag": "true"}, False),
        ({"tag": "v1"}, {"tag": "v1"}, True),
    ],
)
def test_is_subset(want, have, same):
    assert is_subset(want, have) is same
