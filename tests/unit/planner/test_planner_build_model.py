"""`build_model` and `ModelSettings`: which adapter a profile's `model` names, and how the
settings come from the environment."""

from __future__ import annotations

import pytest
from loopline_planner.adapters.models import (
    AnthropicModel,
    DemoModel,
    ModelAdapter,
    ModelSettings,
    OpenAIChatModel,
    build_model,
)

ENV = (
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "LOOPLINE_PLANNER_OPENAI_MODEL",
    "LOOPLINE_PLANNER_MODEL_TIMEOUT_S",
    "LOOPLINE_PLANNER_MODEL_MAX_ATTEMPTS",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_API_KEY",
    "LOOPLINE_PLANNER_ANTHROPIC_MODEL",
    # Field names under the prefix, which the settings also accept.
    "LOOPLINE_PLANNER_OPENAI_BASE_URL",
    "LOOPLINE_PLANNER_OPENAI_API_KEY",
    "LOOPLINE_PLANNER_TIMEOUT_S",
    "LOOPLINE_PLANNER_MAX_ATTEMPTS",
)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    settings = ModelSettings()
    assert settings.openai_base_url == "https://api.openai.com/v1"
    assert settings.openai_api_key is None
    assert settings.openai_model == "gpt-4o-mini"
    assert (settings.timeout_s, settings.max_attempts) == (60.0, 4)


def test_settings_read_their_documented_environment_names(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    clean_env.setenv("OPENAI_API_KEY", "sk-test")
    clean_env.setenv("LOOPLINE_PLANNER_OPENAI_MODEL", "llama3")
    clean_env.setenv("LOOPLINE_PLANNER_MODEL_TIMEOUT_S", "2.5")
    clean_env.setenv("LOOPLINE_PLANNER_MODEL_MAX_ATTEMPTS", "7")
    settings = ModelSettings()
    assert settings.openai_base_url == "http://127.0.0.1:9/v1"
    assert settings.openai_api_key is not None
    assert settings.openai_api_key.get_secret_value() == "sk-test"
    assert "sk-test" not in repr(settings)
    assert (settings.openai_model, settings.timeout_s, settings.max_attempts) == ("llama3", 2.5, 7)


def test_generic_variables_meant_for_other_programs_are_not_read(
    clean_env: pytest.MonkeyPatch,
) -> None:
    for name, value in [("OPENAI_MODEL", "x"), ("TIMEOUT_S", "1"), ("MAX_ATTEMPTS", "9")]:
        clean_env.setenv(name, value)
    settings = ModelSettings()
    assert (settings.openai_model, settings.timeout_s, settings.max_attempts) == (
        "gpt-4o-mini",
        60.0,
        4,
    )


def test_settings_can_be_given_in_code(clean_env: pytest.MonkeyPatch) -> None:
    settings = ModelSettings(openai_model="m", max_attempts=2)
    assert (settings.openai_model, settings.max_attempts) == ("m", 2)


def test_demo_builds_the_demo_model(clean_env: pytest.MonkeyPatch) -> None:
    model = build_model("demo", ModelSettings())
    assert isinstance(model, DemoModel)
    assert model.name == "demo"


@pytest.mark.parametrize(
    ("form", "name"),
    [("openai", "openai:gpt-4o-mini"), ("openai:llama3.1:8b", "openai:llama3.1:8b")],
)
async def test_openai_forms_build_the_openai_adapter(
    clean_env: pytest.MonkeyPatch, form: str, name: str
) -> None:
    model = build_model(form, ModelSettings(openai_base_url="http://127.0.0.1:9/v1/"))
    assert isinstance(model, OpenAIChatModel)
    assert isinstance(model, ModelAdapter)
    assert model.name == name
    assert model.base_url == "http://127.0.0.1:9/v1"
    await model.aclose()


@pytest.mark.parametrize(
    ("form", "name"),
    [
        ("anthropic", "anthropic:claude-sonnet-4-5"),
        ("anthropic:claude-haiku-4-5", "anthropic:claude-haiku-4-5"),
    ],
)
async def test_anthropic_forms_build_the_anthropic_adapter(
    clean_env: pytest.MonkeyPatch, form: str, name: str
) -> None:
    clean_env.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9")
    clean_env.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    model = build_model(form, ModelSettings())
    assert isinstance(model, AnthropicModel)
    assert isinstance(model, ModelAdapter)
    assert (model.name, model.base_url, model.max_tokens) == (name, "http://127.0.0.1:9", 4096)
    await model.aclose()


@pytest.mark.parametrize("form", ["gpt-4o", "openai:", "Demo", "anthropic:", "claude:x", ""])
def test_anything_else_is_refused_naming_the_accepted_forms(
    clean_env: pytest.MonkeyPatch, form: str
) -> None:
    with pytest.raises(ValueError, match=r'"demo", "openai", "openai:<model name>", "anthropic"'):
        build_model(form, ModelSettings())
