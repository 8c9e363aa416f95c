"""How a process logs in: the Kafka security settings, and the credentials file the CLI and
the SDK fall back on (docs/decisions/0024)."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import certifi
import pytest
from loopline_infra import CredentialStore
from loopline_runtime import ClusterEndpoints, Credentials, KafkaSettings, load_endpoints
from pydantic import SecretStr, ValidationError

LOCAL = ClusterEndpoints(kafka_bootstrap="127.0.0.1:29999", redis_port=26999, postgres_port=25999)


@pytest.fixture
def credentials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Credentials:
    """A credentials file of a home of its own, which the environment points at."""
    for variable in ("BOOTSTRAP", "SECURITY_PROTOCOL", "USERNAME", "PASSWORD", "TOPIC_PREFIX"):
        monkeypatch.delenv(f"LOOPLINE_KAFKA_{variable}", raising=False)
    monkeypatch.delenv("LOOPLINE_REDIS_URL", raising=False)
    monkeypatch.delenv("LOOPLINE_POSTGRES_DSN", raising=False)
    monkeypatch.setenv("LOOPLINE_HOME", str(tmp_path))
    monkeypatch.delenv("LOOPLINE_CREDENTIALS_FILE", raising=False)
    return CredentialStore(tmp_path).ensure(LOCAL, tenants=("acme",))


def test_plaintext_has_no_security_options() -> None:
    options = KafkaSettings(bootstrap="b:9092").client_options()
    assert options == {"bootstrap_servers": "b:9092", "security_protocol": "PLAINTEXT"}


def test_sasl_needs_a_user_and_refuses_a_clear_password_without_tls() -> None:
    with pytest.raises(ValidationError, match="needs LOOPLINE_KAFKA_USERNAME"):
        KafkaSettings(security_protocol="SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="sends the password in clear"):
        KafkaSettings(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            username="memory",
            password=SecretStr("x"),
        )
    with pytest.raises(ValidationError, match="set it to SASL_PLAINTEXT or SASL_SSL"):
        KafkaSettings(username="memory", password=SecretStr("x"))


def test_sasl_ssl_checks_the_brokers_against_the_ca_file() -> None:
    settings = KafkaSettings(
        bootstrap="b:9093",
        security_protocol="SASL_SSL",
        username="memory",
        password=SecretStr("s3cret"),
        ca_file=Path(certifi.where()),
    )
    options = settings.client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("memory", "s3cret")
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert settings.principal == "User:memory"
    with pytest.raises(ValidationError, match=r"CA_FILE=/nowhere\.pem: no such file"):
        KafkaSettings(security_protocol="SSL", ca_file=Path("/nowhere.pem"))


def test_each_principal_gets_its_own_variables_and_signing_key(credentials: Credentials) -> None:
    memory = credentials.env("memory", signing_keys=Path("/keys.json"))
    planner = credentials.env("planner")
    assert memory["LOOPLINE_KAFKA_USERNAME"] == "memory"
    assert memory["LOOPLINE_KAFKA_SECURITY_PROTOCOL"] == "SASL_PLAINTEXT"
    assert memory["LOOPLINE_SIGNING_KEY_ID"] == "memory"
    assert len(base64.b64decode(memory["LOOPLINE_SIGNING_KEY"])) == 32
    assert memory["LOOPLINE_SIGNING_KEYS_FILE"] == "/keys.json"
    assert "LOOPLINE_SIGNING_KEYS_FILE" not in planner
    assert memory["LOOPLINE_KAFKA_PASSWORD"] != planner["LOOPLINE_KAFKA_PASSWORD"]
    assert planner["LOOPLINE_POSTGRES_DSN"].startswith("postgresql://loopline_planner:")
    assert planner["LOOPLINE_REDIS_URL"].startswith("redis://planner:")
    client = credentials.env("client-acme")
    assert "LOOPLINE_POSTGRES_DSN" not in client
    assert "LOOPLINE_REDIS_URL" not in client
    acts_for = {n: p.acts_for for n, p in credentials.principals.items()}
    assert acts_for["client-acme"] == ("acme",)
    assert acts_for["gateway"] == acts_for["recovery"] == acts_for["operator"] == ("*",)
    assert acts_for["planner"] == ("*",)  # it fails a run over its tenant's quota
    assert acts_for["tool-executor"] == ()


def test_with_no_variables_the_cli_acts_as_the_operator(credentials: Credentials) -> None:
    endpoints = load_endpoints()
    assert endpoints.kafka.bootstrap == LOCAL.kafka_bootstrap
    assert endpoints.kafka.username == "operator"
    assert endpoints.kafka.security_protocol == "SASL_PLAINTEXT"
    assert endpoints.postgres.dsn.get_secret_value().startswith("postgresql://loopline_operator:")
    assert endpoints.redis.url.get_secret_value().startswith("redis://operator:")


def test_what_the_environment_sets_wins(
    credentials: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPLINE_KAFKA_BOOTSTRAP", "elsewhere:9092")
    elsewhere = load_endpoints()
    assert (elsewhere.kafka.bootstrap, elsewhere.kafka.username) == ("elsewhere:9092", None)

    monkeypatch.setenv("LOOPLINE_KAFKA_BOOTSTRAP", LOCAL.kafka_bootstrap)
    for name, value in credentials.env("planner").items():
        monkeypatch.setenv(name, value)
    planner = load_endpoints()
    assert planner.kafka.username == "planner"
    assert planner.postgres.dsn.get_secret_value().startswith("postgresql://loopline_planner:")


def test_the_files_are_the_owners_alone_and_keep_their_secrets(
    tmp_path: Path, credentials: Credentials
) -> None:
    store = CredentialStore(tmp_path)
    for path in (store.path, store.signing_keys_path):
        assert path.stat().st_mode & 0o777 == 0o600
    again = store.ensure(LOCAL, tenants=("acme", "globex"))
    assert again.principal("memory") == credentials.principal("memory")
    assert again.principal("client-globex").acts_for == ("globex",)
