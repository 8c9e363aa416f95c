"""The secrets of `docker compose`: the principals of `loopline infra up`, for the servers of the
compose network.

`loopline infra compose-secrets` writes them into a folder of the home (`.loopline/compose`,
mode 0700), which docker-compose.yml reads: each container's variables from its own env file,
the Redis users and the signing keys mounted as files. The `provision` container then gives
the servers their users, roles, ACLs and topics (`provision_servers`), as `infra up` does for
the servers it runs. Nothing in docker-compose.yml holds a secret, and it starts nothing
until the folder exists.
"""

from __future__ import annotations

import os
from pathlib import Path

import asyncpg
from loopline_runtime import ClusterEndpoints, Credentials, KafkaSettings

from loopline_infra._acls import (
    ADMIN,
    DEFAULT_TENANT,
    OPERATOR,
    SERVICE_PRINCIPALS,
    client_principal,
)
from loopline_infra._credentials import (
    CONTROLLER_SECRET,
    KEYS_READERS,
    CredentialStore,
    write_private,
)
from loopline_infra._kafka import plain_users
from loopline_infra._kafka_access import wait_login
from loopline_infra._postgres import ADMIN_ROLE, DATABASE
from loopline_infra._postgres_roles import provision_roles
from loopline_infra._process import InfraError
from loopline_infra._provision import (
    admin_settings,
    principal_settings,
    provision_namespace,
    provision_users,
)
from loopline_infra._redis import acl_file

ENDPOINTS = ClusterEndpoints(
    kafka_bootstrap="kafka:9092",
    redis_host="redis",
    redis_port=6379,
    postgres_host="postgres",
    postgres_port=5432,
    postgres_database=DATABASE,
)
"""The servers as the containers of the compose network reach them."""
HOST_BOOTSTRAP = "127.0.0.1:19092"
"""Kafka's listener published on the host: the CLI's, the SDK's and kcat's."""
POSTGRES_SECRET = "postgres_admin_password"
GRAFANA_SECRET = "grafana_admin_password"
IN_CONTAINER = Path("/run/loopline")
"""Where the containers find the files of the folder they mount."""
CONTAINER_USER = 10001
"""The `loopline` user of the project's image (Dockerfile): it reads the signing keys."""
HOST_PRINCIPALS = (OPERATOR, client_principal(DEFAULT_TENANT))
"""Principals used from the host, through the published listener."""


def _env_file(path: Path, env: dict[str, str]) -> Path:
    write_private(path, "".join(f"{name}={value}\n" for name, value in env.items()))
    return path


def write_compose_secrets(folder: Path) -> list[Path]:
    """Every file docker-compose.yml reads, in `folder` (made mode 0700); the secrets of an
    earlier call are kept. Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    store = CredentialStore(folder)
    credentials = store.ensure(
        ENDPOINTS, internal=(CONTROLLER_SECRET, POSTGRES_SECRET, GRAFANA_SECRET)
    )
    secret = {name: value.get_secret_value() for name, value in credentials.internal.items()}
    written = [store.path, store.signing_keys_path]
    for name in SERVICE_PRINCIPALS:
        keys = IN_CONTAINER / store.signing_keys_path.name if name in KEYS_READERS else None
        written.append(_env_file(folder / f"{name}.env", credentials.env(name, signing_keys=keys)))
    for name in HOST_PRINCIPALS:
        env = {**credentials.kafka_env(name), "LOOPLINE_KAFKA_BOOTSTRAP": HOST_BOOTSTRAP}
        written.append(_env_file(folder / f"{name}.env", env))
    admin = credentials.principal(ADMIN).kafka.password.get_secret_value()
    written.append(
        _env_file(
            folder / "kafka.env",
            {
                "LOOPLINE_ADMIN_PASSWORD": admin,
                "LOOPLINE_CONTROLLER_PASSWORD": secret[CONTROLLER_SECRET],
                "LOOPLINE_PLAIN_USERS": plain_users(credentials),
            },
        )
    )
    written.append(
        _env_file(
            folder / "postgres.env",
            {
                "POSTGRES_USER": ADMIN_ROLE,
                "POSTGRES_PASSWORD": secret[POSTGRES_SECRET],
                "POSTGRES_DB": DATABASE,
            },
        )
    )
    written.append(
        _env_file(folder / "grafana.env", {"GF_SECURITY_ADMIN_PASSWORD": secret[GRAFANA_SECRET]})
    )
    acl = folder / "redis.acl"
    write_private(acl, acl_file(credentials))
    written.append(acl)
    _readable_by_the_services(store.signing_keys_path)
    return written


def _readable_by_the_services(path: Path) -> None:
    """The services' containers run as the image's own user: the file they mount is theirs
    (when this runs as root; otherwise docker-compose.yml's `user:` must be this account)."""
    if os.geteuid() == 0:
        os.chown(path, CONTAINER_USER, CONTAINER_USER)


async def provision_servers(credentials: Credentials, namespace: str = "") -> None:
    """Give servers Loopline did not start (docker compose's) every principal's PostgreSQL
    role, Kafka user, and `namespace` its ACLs and topics, as their administrators. Redis
    has its users from the file it started with."""
    e = credentials.endpoints
    if POSTGRES_SECRET not in credentials.internal:
        raise InfraError("the credentials file has no PostgreSQL administrator's password")
    conn = await asyncpg.connect(
        host=e.postgres_host,
        port=e.postgres_port,
        user=ADMIN_ROLE,
        password=credentials.internal[POSTGRES_SECRET].get_secret_value(),
        database=e.postgres_database,
        timeout=10,
    )
    try:
        await provision_roles(conn, credentials, e.postgres_database)
    finally:
        await conn.close()
    await wait_login(admin_settings(credentials))
    await provision_users(credentials)
    await wait_login(principal_settings(credentials, OPERATOR))
    # Only where the cluster is and the namespace: provisioning logs in as the admin.
    settings = KafkaSettings(
        bootstrap=e.kafka_bootstrap,
        topic_prefix=namespace,
        security_protocol="PLAINTEXT",
        username=None,
        password=None,
    )
    await provision_namespace(credentials, settings)
