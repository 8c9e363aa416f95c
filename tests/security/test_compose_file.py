"""docker-compose.yml holds no secret, publishes only on 127.0.0.1, and runs its servers
secured as `make infra-up` does; `loopline infra compose-secrets` writes every file it reads.

Checked as files (no Docker engine here): what the containers do with them is the same code
and configuration the rest of this suite runs against real servers.
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from loopline_infra import default_paths, write_compose_secrets

PROJECT = default_paths().project
SECRETS = "${LOOPLINE_COMPOSE_SECRETS:-./.loopline/compose}/"
LOOPLINE = ("memory", "planner", "tool-executor", "recovery", "gateway")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load((PROJECT / "docker-compose.yml").read_text())[
        "services"
    ]
    return services


def test_every_published_port_is_bound_to_this_host(compose: dict[str, Any]) -> None:
    published = {name: s["ports"] for name, s in compose.items() if "ports" in s}
    assert set(published) == {"kafka", "gateway", "prometheus", "grafana"}
    for name, ports in published.items():
        assert all(str(p).startswith("127.0.0.1:") for p in ports), name


def test_no_secret_is_written_in_the_file(compose: dict[str, Any]) -> None:
    text = (PROJECT / "docker-compose.yml").read_text()
    assert "trust" not in text
    assert "admin/admin" not in text
    for name, service in compose.items():
        for variable, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|_KEY$", variable):
                assert str(value).startswith("${"), f"{name}: {variable}"


def test_each_service_takes_its_own_principals_variables(compose: dict[str, Any]) -> None:
    for name in LOOPLINE:
        assert compose[name]["env_file"] == [f"{SECRETS}{name}.env"], name
        assert compose[name]["depends_on"] == {
            "provision": {"condition": "service_completed_successfully"}
        }
    readers = {n for n in LOOPLINE if compose[n].get("volumes")}
    assert readers == {"memory", "gateway"}  # the signing keys of everyone


def test_the_servers_ask_for_credentials(compose: dict[str, Any]) -> None:
    assert "--web.enable-lifecycle" not in compose["prometheus"]["command"]
    assert compose["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "--aclfile" in compose["redis"]["command"][0]
    properties = dict(
        line.split("=", 1)
        for line in (PROJECT / "infra/kafka/compose.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    assert properties["allow.everyone.if.no.acl.found"] == "false"
    assert properties["authorizer.class.name"].endswith("StandardAuthorizer")
    assert set(properties["listener.security.protocol.map"].split(",")) == {
        "INTERNAL:SASL_PLAINTEXT",
        "EXTERNAL:SASL_PLAINTEXT",
        "CONTROLLER:SASL_PLAINTEXT",
    }
    assert properties["super.users"] == "User:admin;User:controller"


def test_compose_secrets_writes_every_file_the_compose_file_reads(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    folder = tmp_path / "compose"
    written = {p.name: p for p in write_compose_secrets(folder)}
    wanted = {f.removeprefix(SECRETS) for s in compose.values() for f in s.get("env_file", [])} | {
        "signing-keys.json",
        "redis.acl",
        "credentials.json",
    }
    assert wanted <= set(written)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in written.values())
    memory = dict(line.split("=", 1) for line in written["memory.env"].read_text().splitlines())
    assert memory["LOOPLINE_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert memory["LOOPLINE_KAFKA_USERNAME"] == "memory"
    assert memory["LOOPLINE_SIGNING_KEYS_FILE"] == "/run/loopline/signing-keys.json"
    assert memory["LOOPLINE_POSTGRES_DSN"].startswith("postgresql://loopline_memory:")
    assert memory["LOOPLINE_POSTGRES_DSN"].endswith("@postgres:5432/loopline")
    operator = written["operator.env"].read_text()
    assert "LOOPLINE_KAFKA_BOOTSTRAP=127.0.0.1:19092" in operator
    # Again: the same secrets.
    before = json.loads(written["credentials.json"].read_text())
    write_compose_secrets(folder)
    assert json.loads(written["credentials.json"].read_text()) == before
