"""Apache Kafka in KRaft mode, assembled from Maven Central: one node, or a local cluster.

Every node is a broker and a controller (combined mode): a cluster of three is three JVMs, not
six, on a development machine of two cores. A single node keeps the layout it always had
(`kafka/`, formatted `--standalone`); the nodes of a cluster live in `kafka-1/`, `kafka-2/`, …
and are formatted with one cluster id and the same initial controllers, so switching between
the two keeps both sets of data.
"""

from __future__ import annotations

import base64
import json
import logging
import shutil
import uuid
from pathlib import Path
from string import Template

from loopline_runtime import Credentials

from loopline_infra._acls import ADMIN
from loopline_infra._components import Component, Ports
from loopline_infra._credentials import CONTROLLER_SECRET, CredentialStore, write_private
from loopline_infra._kafka_access import scram_format_argument
from loopline_infra._packages import JAVA, KCAT, MAVEN, Say
from loopline_infra._paths import KAFKA_VERSION, Paths
from loopline_infra._process import InfraError, run, spawn

SINGLE_NODE = {"replication": 1, "min_isr": 1, "session_ms": 9000, "heartbeat_ms": 2000}
"""One node: one copy of everything; Kafka's own broker session (nothing to fail over to)."""
CLUSTER = {"replication": 3, "min_isr": 2, "session_ms": 6000, "heartbeat_ms": 1500}
"""A cluster: three copies, two in sync for a write, and a broker that stops heartbeating
fenced after 6 s (Kafka's default is 9 s) so its partitions move in time for the runs on it
(docs/operations.md gives the figures with both)."""


def kafka_uuid() -> str:
    """A random id as Kafka writes them: base64url of 16 bytes, never starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def plain_users(credentials: Credentials) -> str:
    """The PLAIN login module's table of users (`user_NAME="PASSWORD"`): every principal but
    the admin, with its SCRAM password, for clients that cannot do SCRAM with Kafka 4."""
    return " ".join(
        f'user_{p.kafka.username}="{p.kafka.password.get_secret_value()}"'
        for name, p in sorted(credentials.principals.items())
        if name != ADMIN
    )


class Kafka(Component):
    """One Kafka node, broker and controller, of a cluster of `brokers` nodes (1: on its own)."""

    name = "kafka"
    requirements = (JAVA, MAVEN, KCAT)

    def __init__(self, paths: Paths, ports: Ports, node_id: int = 1, brokers: int = 1):
        self.node_id = node_id
        self.brokers = brokers
        if brokers > 1:
            self.name = f"kafka-{node_id}"
        self.nodes = ports.kafka_nodes(brokers)
        super().__init__(paths, ports)

    @property
    def broker_port(self) -> int:
        return self.nodes[self.node_id - 1][0]

    @property
    def controller_port(self) -> int:
        return self.nodes[self.node_id - 1][1]

    @property
    def ports_used(self) -> tuple[int, ...]:
        return (self.broker_port, self.controller_port)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    @property
    def bootstrap(self) -> str:
        """Every broker of the cluster, as clients are given them."""
        return ",".join(f"127.0.0.1:{broker}" for broker, _ in self.nodes)

    @property
    def log(self) -> Path:
        return self.dir / "logs" / "server.log"

    @property
    def _properties(self) -> Path:
        return self.dir / "server.properties"

    @property
    def _data(self) -> Path:
        return self.dir / "data"

    @property
    def _identity(self) -> Path:
        """The cluster id and each controller's directory id, shared by the cluster's nodes."""
        return self.paths.home / "kafka-cluster.json"

    @property
    def _secured(self) -> Path:
        """Marks data formatted with the admin's SCRAM user (an earlier Loopline's was not)."""
        return self.dir / "formatted-with-users"

    def prepare(self, say: Say) -> None:
        self._fetch_jars(say)
        self.dir.mkdir(parents=True, exist_ok=True)
        credentials = CredentialStore(self.paths).require()
        write_private(self._properties, self.render(credentials))
        if not (self._data / "meta.properties").exists():
            self._format(say, credentials)
        elif not self._secured.exists():
            raise InfraError(
                f"{self.name}: its data in {self._data} was made by an earlier Loopline, with no "
                "users and no ACLs; `loopline infra down --wipe` deletes it (and its runs), "
                "then `loopline infra up` starts it secured"
            )

    def render(self, credentials: Credentials) -> str:
        """This node's server.properties: the checked-in template with its placeholders
        filled (the admin's and the controllers' passwords among them)."""
        shape = SINGLE_NODE if self.brokers == 1 else CLUSTER
        template = Template(
            (self.paths.project / "infra" / "kafka" / "server.properties").read_text()
        )
        return template.substitute(
            node_id=self.node_id,
            quorum=",".join(f"127.0.0.1:{controller}" for _, controller in self.nodes),
            broker_port=self.broker_port,
            controller_port=self.controller_port,
            data_dir=self._data,
            replication=shape["replication"],
            min_isr=shape["min_isr"],
            broker_session_ms=shape["session_ms"],
            broker_heartbeat_ms=shape["heartbeat_ms"],
            admin_user=ADMIN,
            admin_password=credentials.principal(ADMIN).kafka.password.get_secret_value(),
            controller_password=credentials.internal[CONTROLLER_SECRET].get_secret_value(),
            plain_users=plain_users(credentials),
        )

    def _fetch_jars(self, say: Say) -> None:
        libs = self.paths.kafka_libs
        marker = libs / ".complete"
        if marker.exists():
            return
        say(f"kafka: fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {libs}")
        pom = self.paths.project / "infra" / "kafka" / "pom.xml"
        shutil.rmtree(libs, ignore_errors=True)
        run(
            ["mvn", "-q", "-B", "-f", str(pom), "package", f"-Dlibs.dir={libs}"],
            what="mvn (Kafka jars)",
        )
        marker.write_text(KAFKA_VERSION + "\n")

    def _format(self, say: Say, credentials: Credentials) -> None:
        if self.brokers == 1:
            cluster_id, quorum = kafka_uuid(), ["--standalone"]
        else:
            cluster_id, directories = self._cluster_identity()
            voters = ",".join(
                f"{node}@127.0.0.1:{controller}:{directories[node - 1]}"
                for node, (_, controller) in enumerate(self.nodes, start=1)
            )
            quorum = ["--initial-controllers", voters]
        say(f"{self.name}: formatting storage (cluster {cluster_id})")
        run(
            [
                *self._java(),
                "kafka.tools.StorageTool",
                "format",
                *quorum,
                "-t",
                cluster_id,
                "-c",
                str(self._properties),
                # The brokers log in to each other as the admin: its user must be in the
                # metadata log from the start.
                "--add-scram",
                scram_format_argument(
                    ADMIN, credentials.principal(ADMIN).kafka.password.get_secret_value()
                ),
            ],
            what=f"{self.name} storage format",
        )
        self._secured.write_text("SCRAM-SHA-512\n")

    def _cluster_identity(self) -> tuple[str, list[str]]:
        """The cluster id and each node's metadata directory id (node 1 first), made by the
        first node formatted and read by the others."""
        if self._identity.exists():
            identity = json.loads(self._identity.read_text())
            cluster_id, directories = identity["cluster_id"], identity["directories"]
            if len(directories) != self.brokers:
                raise InfraError(
                    f"{self._identity} describes a cluster of {len(directories)} nodes, not "
                    f"{self.brokers}: `loopline infra down --wipe` deletes it"
                )
            return str(cluster_id), [str(d) for d in directories]
        cluster_id, directories = kafka_uuid(), [kafka_uuid() for _ in range(self.brokers)]
        identity = {"cluster_id": cluster_id, "directories": directories}
        self._identity.write_text(json.dumps(identity, indent=2) + "\n")
        return cluster_id, directories

    def wipe(self) -> None:
        super().wipe()
        if self.brokers > 1 and self.node_id == 1:
            self._identity.unlink(missing_ok=True)

    def _java(self) -> list[str]:
        return [
            "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            # The client compiler only: a local broker lives for a session on a machine it
            # shares with the services and the tests, and the server compiler's work (tens of
            # CPU seconds in its first minutes) never pays back in that time. A broker starts
            # on 40% less CPU.
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.dir / 'logs'}",
            f"-Dlog4j2.configurationFile={self.paths.project / 'infra' / 'kafka' / 'log4j2.yaml'}",
            "-cp",
            f"{self.paths.kafka_libs}/*",
        ]

    def start(self) -> None:
        (self.dir / "logs").mkdir(parents=True, exist_ok=True)
        spawn(
            [*self._java(), "kafka.Kafka", str(self._properties)],
            log=self.dir / "logs" / "console.log",
            pid_file=self.pid_file,
        )

    async def ready(self) -> None:
        """The node's broker answers and the cluster's metadata counts it (unfenced)."""
        from aiokafka.admin import AIOKafkaAdminClient

        # While the broker boots, aiokafka logs every refused connection; the caller retries.
        quiet = logging.getLogger("aiokafka")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        settings = CredentialStore(self.paths).kafka_settings(ADMIN, self.endpoint)
        admin = AIOKafkaAdminClient(**settings.client_options(), request_timeout_ms=3000)
        try:
            await admin.start()
            brokers = (await admin.describe_cluster())["brokers"]
            if self.node_id not in {b["node_id"] for b in brokers}:
                raise InfraError(f"broker {self.node_id} is not in the cluster's metadata yet")
        finally:
            await admin.close()
            quiet.setLevel(level)
