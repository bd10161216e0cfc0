"""The no-op check of apply: does the live object already hold every rendered field?"""

import pytest

from modeltemplate_operator.apply import is_subset


@pytest.mark.parametrize(
    "want, have, same",
    [
        ({"a": 1}, {"a": 1, "b": 2}, True),  # server defaults are extra fields
        ({"a": 1}, {"a": 2}, False),
        ({"a": {"b": "x"}}, {"a": {}}, False),
        ({"cpu": "3"}, {"cpu": "3"}, True),
        ({"memory": "2048Gi"}, {"memory": "2Ti"}, True),  # quantities by value
        ({"cpu": "500m"}, {"cpu": "0.5"}, True),
        ({"cpu": "1"}, {"cpu": "2"}, False),
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
