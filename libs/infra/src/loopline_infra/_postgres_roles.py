"""PostgreSQL's roles: one per service, none a superuser, each with rights on its own schemas.

A service owns the schemas of its own name (`memory`, `executor`, `recovery`, `gateway`, in
every namespace) and creates them itself at start: it runs its own migrations, so it has
CREATE on the database and nothing on the others' schemas. The shared `artifacts` schema is
owned by a role no one logs in as, `loopline_artifacts`, whose members are its writers (memory
and the tool-executor); the planner and the gateway read it, the gateway reads memory's and
recovery's tables (their read APIs), by default privileges. The operator is a member of every
owner role: it rebuilds memory's projections, creates gateway keys and drops a namespace.
No role may read or write server files or run programs (`COPY ... TO PROGRAM` needs a
superuser or pg_execute_server_program).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

import asyncpg
from loopline_runtime import Credentials

from loopline_infra._credentials import POSTGRES_ROLES

ARTIFACTS_OWNER = "loopline_artifacts"
OWNERS = ("loopline_memory", "loopline_executor", "loopline_recovery", "loopline_gateway")
"""Roles that own their service's schemas (and create them)."""
ARTIFACT_WRITERS = ("loopline_memory", "loopline_executor")
READS: dict[str, tuple[str, ...]] = {
    ARTIFACTS_OWNER: ("loopline_planner", "loopline_gateway"),
    "loopline_memory": ("loopline_gateway",),
    "loopline_recovery": ("loopline_gateway",),
}
"""Who reads the tables each owner creates."""
OPERATOR_ROLE = POSTGRES_ROLES["operator"]
SCRAM_ITERATIONS = 4096


def scram_verifier(password: str) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of `password`: the role's password is set with it,
    so the password itself is never in a statement the server could log."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    return f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def role_statements(credentials: Credentials, database: str) -> list[str]:
    """Every statement that makes the roles and their rights what they must be (idempotent:
    run at every `infra up`)."""
    db = _quoted(database)
    logins = {
        p.postgres.role: p.postgres.password.get_secret_value()
        for p in credentials.principals.values()
        if p.postgres is not None
    }
    out = [
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN "
        f"CREATE ROLE {_quoted(role)}; END IF; END $$"
        for role in (*sorted(logins), ARTIFACTS_OWNER)
    ]
    for role, password in sorted(logins.items()):
        out.append(
            f"ALTER ROLE {_quoted(role)} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS PASSWORD '{scram_verifier(password)}'"
        )
    out.append(f"ALTER ROLE {_quoted(ARTIFACTS_OWNER)} NOLOGIN NOSUPERUSER")
    out.append(f"REVOKE ALL ON DATABASE {db} FROM PUBLIC")
    out.append("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    out += [f"GRANT CONNECT ON DATABASE {db} TO {_quoted(r)}" for r in sorted(logins)]
    creators = (*OWNERS, ARTIFACTS_OWNER, OPERATOR_ROLE)
    out += [f"GRANT CREATE ON DATABASE {db} TO {_quoted(r)}" for r in creators]
    out += [f"GRANT {ARTIFACTS_OWNER} TO {_quoted(r)}" for r in ARTIFACT_WRITERS]
    out += [f"GRANT {_quoted(r)} TO {_quoted(OPERATOR_ROLE)}" for r in (*OWNERS, ARTIFACTS_OWNER)]
    for owner, readers in READS.items():
        to = ", ".join(_quoted(r) for r in readers)
        out.append(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {_quoted(owner)} GRANT USAGE ON SCHEMAS TO {to}"
        )
        out.append(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {_quoted(owner)} GRANT SELECT ON TABLES TO {to}"
        )
    return out


async def provision_roles(
    conn: asyncpg.Connection, credentials: Credentials, database: str
) -> None:
    """Make the roles and rights (as the admin), in one transaction."""
    async with conn.transaction():
        # Two `infra up` at once (test workers) would both create a missing role.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('loopline roles'))")
        for statement in role_statements(credentials, database):
            await conn.execute(statement)
