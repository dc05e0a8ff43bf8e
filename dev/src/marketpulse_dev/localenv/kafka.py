"""Apache Kafka in KRaft mode from the official Maven Central jars.

`kafka_2.13` declares its server modules with runtime scope and ships no logging backend, so we
copy runtime-scoped dependencies and add slf4j-simple. `kafka-tools` brings ProducerPerformance
and ConsumerPerformance, the ceiling the benchmarks compare against.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from marketpulse_dev.localenv.errors import ComponentError
from marketpulse_dev.localenv.paths import cache_dir
from marketpulse_dev.localenv.process import (
    ManagedProcess,
    console,
    file_lock,
    free_port,
    run_step,
    tail,
    wait_for,
)
from marketpulse_dev.localenv.versions import KAFKA_VERSION, SLF4J_VERSION

POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>io.marketpulse.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{kafka}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{kafka}</version></dependency>
    <!-- Declared so that Maven's nearest-wins picks slf4j 2.x, the API slf4j-simple 2.x binds to. -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{slf4j}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>{slf4j}</version></dependency>
  </dependencies>
</project>
"""


def kafka_lib_dir() -> Path:
    return cache_dir() / "kafka" / KAFKA_VERSION / "libs"


def ensure_kafka(live: bool = True) -> Path:
    """Copy Kafka's jars from Maven Central into the cache once; return the directory of jars."""
    libs = kafka_lib_dir()
    marker = libs / ".complete"
    if marker.exists():
        return libs
    with file_lock(cache_dir() / "locks" / "kafka.lock"):
        if marker.exists():
            return libs
        for tool in ("mvn", "java"):
            if shutil.which(tool) is None:
                raise ComponentError("obtain Kafka", f"`{tool}` is not on PATH; install Java 17 and Maven")
        work = libs.parent / "fetch"
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        (work / "pom.xml").write_text(POM.format(kafka=KAFKA_VERSION, slf4j=SLF4J_VERSION))
        staging = work / "libs"
        run_step(
            f"download Kafka {KAFKA_VERSION} jars from Maven Central",
            [
                "mvn",
                "-B",
                "-q",
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            log_path=cache_dir() / "logs" / "obtain-kafka.log",
            cwd=work,
            live=live,
        )
        if not (staging / f"kafka_2.13-{KAFKA_VERSION}.jar").exists():
            raise ComponentError(
                "obtain Kafka", f"Maven finished but kafka_2.13-{KAFKA_VERSION}.jar is missing"
            )
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
        marker.touch()
        shutil.rmtree(work, ignore_errors=True)
    return libs


def java_classpath() -> str:
    return str(ensure_kafka() / "*")


def java_executable() -> str:
    """`java` from PATH; without it the broker cannot start, whatever the cache holds."""
    java = shutil.which("java")
    if java is None:
        raise ComponentError("start Kafka", "`java` is not on PATH; install Java 17 or newer")
    return java


SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={quorum_voters}
listeners=PLAINTEXT://{host}:{port},SASL_PLAINTEXT://{host}:{sasl_port},CONTROLLER://127.0.0.1:{controller_port}{proxied_listener}
advertised.listeners=PLAINTEXT://{host}:{port},SASL_PLAINTEXT://{host}:{sasl_port}{proxied_advertised}
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,PROXIED:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram_login}
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
# Test broker only: the PLAINTEXT listeners (clients of the tests that predate SASL, the inter-broker
# and controller connections) authenticate no one, so their principal is User:ANONYMOUS; making it a
# super user keeps them working while the SASL listener enforces ACLs for every SCRAM user but admin.
# A production broker never lists ANONYMOUS here (the chart's Kafka has no unauthenticated listener).
super.users={super_users}
log.dirs={log_dir}
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor={internal_replicas}
offsets.topic.num.partitions=3
transaction.state.log.replication.factor={internal_replicas}
transaction.state.log.min.isr={internal_min_isr}
share.coordinator.state.topic.replication.factor={internal_replicas}
share.coordinator.state.topic.min.isr={internal_min_isr}
group.initial.rebalance.delay.ms=0
log.flush.interval.ms=1000
"""


@dataclass
class KafkaServer:
    """A single-node KRaft broker+controller with its data under `workdir`.

    Clients connect to `host` (127.0.0.1 unless pods of the local node must reach it, then the node
    link's host address); the controller listener stays on loopback. `port` is PLAINTEXT (anyone is
    a super user there); `sasl_port` is SASL_PLAINTEXT with SCRAM-SHA-512, where ACLs apply to every
    user but the super user `admin_user`, whose password is made at format time and kept in the
    workdir (a restarted broker keeps its credentials with its data).
    """

    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    controller_port: int = field(default_factory=free_port)
    sasl_port: int = 0
    heap: str = "512m"
    process: ManagedProcess | None = None
    admin_user: str = "admin"
    # (listen port, advertised port): a PLAINTEXT listener PROXIED whose clients are told to reach the
    # broker at the advertised port, where a fault proxy forwards to the listen port. Every connection
    # of such a client (bootstrap, coordinator, fetches) then goes through the proxy, so a test can cut
    # one client off the broker while the others keep going.
    proxied: tuple[int, int] | None = None
    # One node of a KafkaCluster: its id, every voter (`id@host:port,...`), the id of the cluster its
    # storage is formatted for, and the replication of Kafka's internal topics (offsets above all,
    # or a dead broker takes the archive's commits with it). The defaults are a cluster of one.
    node_id: int = 1
    quorum_voters: str | None = None
    cluster_id: str | None = None
    internal_replicas: int = 1

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def proxied_bootstrap_servers(self) -> str:
        """Where clients that must go through the fault proxy connect (see `proxied`)."""
        assert self.proxied is not None, "this broker has no proxied listener"
        return f"{self.host}:{self.proxied[1]}"

    @property
    def sasl_bootstrap_servers(self) -> str:
        return f"{self.host}:{self.sasl_port}"

    @property
    def admin_password(self) -> str:
        path = self.workdir / "admin-password"
        if not path.exists():
            self.workdir.mkdir(parents=True, exist_ok=True)
            # 0600 from the first byte: the password never sits in a file others may read.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(24))
        return path.read_text().strip()

    def sasl_config(self, username: str | None = None, password: str | None = None) -> dict[str, str]:
        """librdkafka settings for the SASL listener, as `username` (the admin by default)."""
        return {
            "bootstrap.servers": self.sasl_bootstrap_servers,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "SCRAM-SHA-512",
            "sasl.username": username or self.admin_user,
            "sasl.password": password if password is not None else self.admin_password,
        }

    def __post_init__(self) -> None:
        if not self.port:
            self.port = free_port(self.host)
        if not self.sasl_port:
            self.sasl_port = free_port(self.host)

    @property
    def log_path(self) -> Path:
        return self.workdir / "kafka.log"

    def settings(self) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers}

    def _java(self, *args: str) -> list[str]:
        return [
            java_executable(),
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Dorg.slf4j.simpleLogger.defaultLogLevel=info",
            "-Dorg.slf4j.simpleLogger.log.kafka=warn",
            "-Dorg.slf4j.simpleLogger.log.org.apache.kafka=warn",
            "-cp",
            java_classpath(),
            *args,
        ]

    def server_properties(self) -> str:
        return SERVER_PROPERTIES.format(
            host=self.host,
            port=self.port,
            node_id=self.node_id,
            quorum_voters=self.quorum_voters or f"{self.node_id}@127.0.0.1:{self.controller_port}",
            internal_replicas=self.internal_replicas,
            internal_min_isr=max(1, self.internal_replicas - 1),
            controller_port=self.controller_port,
            sasl_port=self.sasl_port,
            proxied_listener=f",PROXIED://{self.host}:{self.proxied[0]}" if self.proxied else "",
            proxied_advertised=f",PROXIED://{self.host}:{self.proxied[1]}" if self.proxied else "",
            super_users=f"User:{self.admin_user};User:ANONYMOUS",
            scram_login="org.apache.kafka.common.security.scram.ScramLoginModule required;",
            log_dir=self.workdir / "data",
        )

    def format_storage(self) -> None:
        """Format once; a second start on the same workdir keeps its data (like a restarted broker)."""
        props = self.workdir / "server.properties"
        props.write_text(self.server_properties())
        if (self.workdir / "data" / "meta.properties").exists():
            return
        step = "format Kafka storage"
        cluster_id = self.cluster_id or self.random_cluster_id()
        # Not run_step: its log records the command line, and this one holds the admin's password.
        formatted = subprocess.run(
            self._java(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                cluster_id,
                "-c",
                str(props),
                # SCRAM credentials live in the cluster metadata: the admin must exist before the
                # broker starts, since no one else may create users through the SASL listener.
                "--add-scram",
                f"SCRAM-SHA-512=[name={self.admin_user},password={self.admin_password}]",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if formatted.returncode != 0:
            raise ComponentError(step, "kafka.tools.StorageTool format failed", formatted.stderr[-2000:])

    def random_cluster_id(self) -> str:
        uuid = subprocess.run(
            self._java("kafka.tools.StorageTool", "random-uuid"), capture_output=True, text=True, check=False
        )
        if uuid.returncode != 0:
            raise ComponentError(
                "format Kafka storage", "kafka.tools.StorageTool random-uuid failed", uuid.stderr[-2000:]
            )
        return uuid.stdout.strip().splitlines()[-1]

    def launch(self) -> KafkaServer:
        """Start the process without waiting: a node of a cluster answers only once a quorum is up."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.format_storage()
        self.process = ManagedProcess(
            "kafka", self._java("kafka.Kafka", str(self.workdir / "server.properties")), self.log_path
        ).start()
        console.print(f"starting Kafka {KAFKA_VERSION} node {self.node_id} on {self.bootstrap_servers}")
        return self

    def start(self, timeout: float = 90) -> KafkaServer:
        self.launch()
        assert self.process is not None
        wait_for(
            self.ready,
            timeout=timeout,
            step="start Kafka",
            what="the broker to answer metadata requests",
            log_path=self.log_path,
            alive=self.process.alive,
            interval=0.5,
        )
        return self

    def ready(self) -> bool:
        from confluent_kafka.admin import AdminClient

        # A probe: refused connections while the broker starts are expected, not worth a log line each.
        admin = AdminClient(
            {"bootstrap.servers": self.bootstrap_servers, "socket.timeout.ms": 2000, "log_level": 0}
        )
        metadata = admin.list_topics(timeout=2)
        return bool(metadata.brokers)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL: a crash, no controlled shutdown, no leadership handed over, no flush."""
        if self.process is not None and self.process.popen is not None and self.process.alive():
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.popen.wait(timeout=30)

    def log_tail(self) -> str:
        return tail(self.log_path)
