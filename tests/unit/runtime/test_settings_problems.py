"""Invalid settings are told in one line naming the setting and the value, not a traceback."""

from __future__ import annotations

import pytest
from loopline_runtime import KafkaSettings, settings_problem


def test_an_invalid_value_names_the_setting_the_rule_and_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOOPLINE_KAFKA_MIN_INSYNC_REPLICAS", "0")
    with pytest.raises(Exception) as raised:  # noqa: PT011 - what is raised is what is rendered
        KafkaSettings()
    assert settings_problem(raised.value) == (
        "invalid setting KafkaSettings.min_insync_replicas: Input should be greater than or "
        "equal to 1 (got '0')"
    )


def test_a_variable_that_is_not_json_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPLINE_KAFKA_REPLICATION_BY_CLASS", "retry=2")
    with pytest.raises(Exception) as raised:  # noqa: PT011
        KafkaSettings()
    problem = settings_problem(raised.value)
    assert problem is not None
    assert 'field "replication_by_class"' in problem
    assert problem.endswith("(a JSON value was expected)")


def test_other_errors_are_not_settings_problems() -> None:
    assert settings_problem(RuntimeError("boom")) is None
