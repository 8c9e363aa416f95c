"""Kafka's users and ACLs, set from Python: AlterUserScramCredentials, CreateAcls, DeleteAcls.

aiokafka's admin client has no method for either; its protocol classes make each request a
few lines (as _quorum.py does for DescribeQuorum), where the alternative is a JVM start per
request (`kafka-configs.sh`, `kafka-acls.sh`), and a test namespace's ACLs would cost seconds.
Changes reach the brokers through the metadata log a moment after the controller accepts them:
`wait_applied` asks every broker until each has them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import (
    CreateAclsRequest_v1,
    DeleteAclsRequest_v1,
    DescribeAclsRequest_v1,
)
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    CompactArray,
    CompactBytes,
    CompactString,
    Int8,
    Int16,
    Int32,
    Schema,
    TaggedFields,
)
from loopline_bus import broker_ids
from loopline_runtime import KafkaSettings

from loopline_infra._acls import Acl
from loopline_infra._process import InfraError

SCRAM_SHA_512 = 2
"""The protocol's number of the SCRAM-SHA-512 mechanism."""
SCRAM_ITERATIONS = 8192
ANY_HOST = "*"
ALLOW = 3
APPLY_TIMEOUT_S = 30.0


def salted_password(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> bytes:
    """SCRAM's SaltedPassword (RFC 5802's Hi: PBKDF2 with HMAC-SHA-512): what the cluster
    keeps instead of the password."""
    return hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)


def scram_format_argument(username: str, password: str) -> str:
    """`kafka-storage format --add-scram` for a user, salted here so the password itself is
    never on a command line."""
    salt = secrets.token_bytes(32)
    salted = base64.b64encode(salted_password(password, salt)).decode()
    return (
        f"SCRAM-SHA-512=[name={username},salt={base64.b64encode(salt).decode()},"
        f"saltedpassword={salted},iterations={SCRAM_ITERATIONS}]"
    )


class AlterUserScramCredentialsResponse_v0(Response):  # type: ignore[misc]  # noqa: N801
    API_KEY = 51
    API_VERSION = 0
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "results",
            CompactArray(
                ("user", CompactString("utf-8")),
                ("error_code", Int16),
                ("error_message", CompactString("utf-8")),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest_v0(RequestStruct):  # type: ignore[misc]  # noqa: N801
    FLEXIBLE_VERSION: ClassVar[bool] = True
    API_KEY = 51
    API_VERSION = 0
    RESPONSE_TYPE = AlterUserScramCredentialsResponse_v0
    SCHEMA = Schema(
        (
            "deletions",
            CompactArray(
                ("name", CompactString("utf-8")), ("mechanism", Int8), ("tags", TaggedFields)
            ),
        ),
        (
            "upsertions",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("mechanism", Int8),
                ("iterations", Int32),
                ("salt", CompactBytes),
                ("salted_password", CompactBytes),
                ("tags", TaggedFields),
            ),
        ),
        ("tags", TaggedFields),
    )


class AlterUserScramCredentialsRequest(Request[AlterUserScramCredentialsRequest_v0]):  # type: ignore[misc]
    API_KEY = 51

    def __init__(self, users: Mapping[str, str]):
        self._upsertions: list[tuple[str, int, int, bytes, bytes, dict[int, bytes]]] = []
        for name, password in users.items():
            salt = secrets.token_bytes(32)
            self._upsertions.append(
                (name, SCRAM_SHA_512, SCRAM_ITERATIONS, salt, salted_password(password, salt), {})
            )

    def build(self, request_struct_class: type[AlterUserScramCredentialsRequest_v0]) -> Any:
        return request_struct_class([], self._upsertions, {})


def _binding(acl: Acl) -> tuple[int, str, int, str, str, int, int]:
    return (acl.resource, acl.name, acl.pattern, acl.principal, ANY_HOST, acl.operation, ALLOW)


class CreateAclsRequest(Request[CreateAclsRequest_v1]):  # type: ignore[misc]
    """Many bindings in one request (aiokafka's builds one)."""

    API_KEY = 30

    def __init__(self, acls: Sequence[Acl]):
        self._creations = [_binding(a) for a in acls]

    def build(self, request_struct_class: type[CreateAclsRequest_v1]) -> Any:
        return request_struct_class(self._creations)


class DeleteAclsRequest(Request[DeleteAclsRequest_v1]):  # type: ignore[misc]
    """Exactly these bindings, in one request."""

    API_KEY = 31

    def __init__(self, acls: Sequence[Acl]):
        self._filters = [_binding(a) for a in acls]

    def build(self, request_struct_class: type[DeleteAclsRequest_v1]) -> Any:
        return request_struct_class(self._filters)


class DescribeAclsRequest(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]
    """The bindings of one principal, whatever the resource (as one broker knows them)."""

    API_KEY = 29
    ANY = 1

    def __init__(self, principal: str):
        self._principal = principal

    def build(self, request_struct_class: type[DescribeAclsRequest_v1]) -> Any:
        any_ = self.ANY
        return request_struct_class(any_, None, any_, self._principal, None, any_, any_)


class KafkaAccess:
    """Users and ACLs of a cluster, as its super user: `async with KafkaAccess(settings)`."""

    def __init__(self, settings: KafkaSettings, timeout_ms: int = 30_000):
        self._admin = AIOKafkaAdminClient(
            **settings.client_options(), request_timeout_ms=timeout_ms
        )

    async def __aenter__(self) -> Self:
        await self._admin.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._admin.close()

    async def set_passwords(self, users: Mapping[str, str]) -> None:
        """Create these SCRAM-SHA-512 users, or set their passwords."""
        if not users:
            return
        response = (
            await self._admin._send_request(AlterUserScramCredentialsRequest(users))
        ).to_object()
        _raise_errors(
            "the cluster refused users",
            [(r["user"], r["error_code"], r["error_message"]) for r in response["results"]],
        )

    async def create_acls(self, acls: Sequence[Acl]) -> None:
        """Add these ALLOW bindings (one already there is left as it is)."""
        if not acls:
            return
        response = (await self._admin._send_request(CreateAclsRequest(acls))).to_object()
        _raise_errors(
            "the cluster refused ACLs",
            [
                (acl.describe(), r["error_code"], r["error_message"])
                for acl, r in zip(acls, response["creation_responses"], strict=True)
            ],
        )

    async def delete_acls(self, acls: Sequence[Acl]) -> None:
        """Remove these bindings (missing ones are fine)."""
        if not acls:
            return
        response = (await self._admin._send_request(DeleteAclsRequest(acls))).to_object()
        _raise_errors(
            "the cluster refused to delete ACLs",
            [("filter", r["error_code"], r["error_message"]) for r in response["filter_responses"]],
        )

    async def acls_of(self, principal: str, node_id: int | None = None) -> set[Acl]:
        """The bindings of `principal` a broker (any, or `node_id`) enforces now."""
        request = DescribeAclsRequest(principal)
        response = (await self._admin._send_request(request, node_id)).to_object()
        _raise_errors(
            "describing ACLs failed",
            [(principal, response["error_code"], response["error_message"])],
        )
        return {
            Acl(
                a["principal"],
                r["resource_type"],
                r["resource_name"],
                r["resource_pattern_type"],
                a["operation"],
            )
            for r in response["resources"]
            for a in r["acls"]
            if a["permission_type"] == ALLOW
        }

    async def brokers(self) -> list[int]:
        return await broker_ids(self._admin)

    async def wait_applied(self, acls: Sequence[Acl], *, present: bool = True) -> None:
        """Wait until every broker enforces `acls` (or, `present=False`, none of them)."""
        wanted: dict[str, set[Acl]] = {}
        for acl in acls:
            wanted.setdefault(acl.principal, set()).add(acl)
        waiting: tuple[int, set[Acl]] | None = None
        try:
            async with asyncio.timeout(APPLY_TIMEOUT_S):
                for node in await self.brokers():
                    for principal, expected in wanted.items():
                        while True:
                            held = await self.acls_of(principal, node)
                            off = (expected - held) if present else (expected & held)
                            if not off:
                                break
                            waiting = (node, off)
                            await asyncio.sleep(0.02)
        except TimeoutError:
            node, off = waiting if waiting is not None else (-1, set())
            shown = "\n  ".join(acl.describe() for acl in sorted(off)[:5])
            raise InfraError(
                f"the brokers did not apply {len(acls)} ACL change(s) within "
                f"{APPLY_TIMEOUT_S:.0f}s: broker {node} still "
                f"{'lacks' if present else 'holds'} {len(off)}, among them\n  {shown}"
            ) from None


def _raise_errors(what: str, results: Sequence[tuple[str, int, str | None]]) -> None:
    errors = [
        f"{name}: {message or for_code(code).__name__}" for name, code, message in results if code
    ]
    if errors:
        raise InfraError(f"{what}:\n  " + "\n  ".join(errors))


async def wait_login(settings: KafkaSettings, timeout_s: float = APPLY_TIMEOUT_S) -> None:
    """Wait until `settings`' user can log in on every broker (a new SCRAM user reaches the
    brokers through the metadata log)."""
    quiet = logging.getLogger("aiokafka")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    last: Exception | None = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                admin = AIOKafkaAdminClient(**settings.client_options(), request_timeout_ms=3000)
                try:
                    await admin.start()
                    nodes = [b["node_id"] for b in (await admin.describe_cluster())["brokers"]]
                    for node in nodes:
                        if not await admin._client.ready(node):
                            raise KafkaError(f"broker {node} refused {settings.username}")
                    return
                except (KafkaError, OSError) as exc:
                    last = exc
                finally:
                    await admin.close()
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise InfraError(f"{settings.username} cannot log in to Kafka ({last!r})") from None
    finally:
        quiet.setLevel(level)
