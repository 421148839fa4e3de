"""Start, stop and inspect the local Kafka broker (KRaft, broker+controller, one node)
or a local cluster of several such nodes (`LocalKafkaCluster`).

`ensure_broker` / `broker_running` are the one way to "start a broker unless one
answers": the CLI (`kafka start`, `up`, `demo`), the test session and the benchmarks use
them. `LocalKafka` is the process itself, for callers that must own and restart it.

A cluster's nodes are combined nodes too (each a broker and a controller, the controllers
a static three-voter quorum), so any one node can be down: the quorum keeps a majority
and every partition an in-sync replica. Node `i` (1-based) listens on the bootstrap port
+ 2(i-1) and the controller port + 2(i-1) (9092/9094/9096, controllers 9093/9095/9097),
and lives under `<root>/node-<i>`; `<root>/cluster.properties` records the node count and
the cluster id, so `status` and `stop` find exactly the processes recorded there.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.kafka.probe import broker_ready, metadata_broker_count
from infra.settings import KafkaSettings

KAFKA_HOME = Path(__file__).resolve().parent
JARS_DIR = KAFKA_HOME / "lib"
LOG4J_CONFIG = KAFKA_HOME / "log4j2.properties"


class BrokerError(Exception):
    """The local broker could not be started, reached or stopped; one clear line."""


@dataclass(frozen=True)
class BrokerStatus:
    pid: int | None
    ready: bool


def _reap(pid: int) -> None:
    """Collect the exit status if the broker is our child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _pid_alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        state = stat.read_text().rsplit(")", 1)[-1].split()[0]
        return state != "Z"
    return True


def _is_our_broker(pid: int, properties: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return b"kafka.Kafka" in cmdline and str(properties).encode() in cmdline


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


@dataclass(frozen=True)
class NodeSpec:
    """One KRaft node: its id and the ports of its broker and controller listeners."""

    node_id: int
    host: str
    port: int
    controller_port: int

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def cluster_nodes(settings: KafkaSettings, brokers: int) -> tuple[NodeSpec, ...]:
    """The nodes of a local cluster of `brokers` nodes, derived from the first bootstrap
    server and the controller port (each node 2 ports above the previous one)."""
    if brokers < 1:
        raise BrokerError(f"a cluster needs at least one broker, got {brokers}")
    host, port = settings.first_server
    nodes = tuple(
        NodeSpec(i + 1, host, port + 2 * i, settings.controller_port + 2 * i)
        for i in range(brokers)
    )
    ports = [p for n in nodes for p in (n.port, n.controller_port)]
    if len(set(ports)) != len(ports) or max(ports) > 65535:
        raise BrokerError(
            f"ports of {brokers} nodes from {host}:{port} (controllers from "
            f"{settings.controller_port}) overlap or exceed 65535; choose a controller port "
            "that differs from the bootstrap port by an odd number "
            "(KEYPULSE_KAFKA_CONTROLLER_PORT)"
        )
    return nodes


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def node_properties(node: NodeSpec, quorum: tuple[NodeSpec, ...], data_dir: Path) -> dict[str, str]:
    """The server.properties of `node` in a quorum of `quorum` (a single node: a dynamic
    one-voter quorum, formatted `--standalone`; several: static voters)."""
    size = len(quorum)
    replicas = str(min(3, size))
    min_isr = str(min(2, size))
    host, port, cport = node.host, node.port, node.controller_port
    if size == 1:
        voters = {"controller.quorum.bootstrap.servers": f"{host}:{cport}"}
    else:
        voters = {
            "controller.quorum.voters": ",".join(
                f"{n.node_id}@{n.host}:{n.controller_port}" for n in quorum
            )
        }
    props = {
        "process.roles": "broker,controller",
        "node.id": str(node.node_id),
        **voters,
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port}",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "4",
        "default.replication.factor": replicas,
        "min.insync.replicas": min_isr,
        "unclean.leader.election.enable": "false",
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": "8",
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min_isr,
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "message.max.bytes": str(16 * 1024 * 1024),
        "log.retention.check.interval.ms": "60000",
    }
    if size > 1:
        # A killed node is fenced (its partitions get new leaders, it leaves their ISRs)
        # after 6 s without a heartbeat rather than the default 9 s.
        props["broker.heartbeat.interval.ms"] = "1000"
        props["broker.session.timeout.ms"] = "6000"
    return props


class LocalKafka:
    """One broker whose storage, log and pid file live under `root`.

    Alone (the default) it is node 1 of a one-voter quorum on the settings' ports; with
    `node` and `quorum` it is one node of a `LocalKafkaCluster` (static voters, the
    cluster's `cluster_id`).
    """

    def __init__(
        self,
        settings: KafkaSettings,
        root: Path,
        jars: Path = JARS_DIR,
        *,
        node: NodeSpec | None = None,
        quorum: tuple[NodeSpec, ...] = (),
        cluster_id: str | None = None,
    ) -> None:
        self._settings = settings
        self._root = root.resolve()
        self._jars = jars
        self.node = node or cluster_nodes(settings, 1)[0]
        self._quorum = quorum or (self.node,)
        self._cluster_id = cluster_id
        self.bootstrap = self.node.address
        self.data_dir = self._root / "data"
        self.log_file = self._root / "kafka.log"
        self.pid_file = self._root / "kafka.pid"
        self.properties = self._root / "server.properties"

    # -- inspection -------------------------------------------------------------------
    def _recorded_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if _pid_alive(pid) and _is_our_broker(pid, self.properties):
            return pid
        return None

    def status(self) -> BrokerStatus:
        pid = self._recorded_pid()
        ready = pid is not None and broker_ready(self.bootstrap)
        return BrokerStatus(pid=pid, ready=ready)

    # -- start ------------------------------------------------------------------------
    def _classpath(self) -> str:
        jars = sorted(self._jars.glob("*.jar")) if self._jars.is_dir() else []
        if not any(j.name.startswith("kafka_2.13-") for j in jars):
            raise BrokerError(
                f"Kafka jars not found in {self._jars}; fetch them with "
                "`make kafka-jars` (mvn -f infra/kafka/pom.xml dependency:copy-dependencies)"
            )
        return os.pathsep.join(str(j) for j in jars)

    def _write_properties(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)
        self.properties.write_text(
            "".join(
                f"{k}={v}\n"
                for k, v in node_properties(self.node, self._quorum, self.data_dir).items()
            )
        )

    def _java(self, classpath: str, *args: str, heap: str = "256m") -> list[str]:
        return [
            "java",
            f"-Xmx{heap}",
            f"-Xms{heap}" if heap != "256m" else "-Xms64m",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            classpath,
            *args,
        ]

    def _format_storage(self, classpath: str) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        standalone = ["--standalone"] if len(self._quorum) == 1 else []
        cmd = self._java(
            classpath,
            "kafka.tools.StorageTool",
            "format",
            *standalone,
            f"--cluster-id={self._cluster_id or _new_cluster_id()}",
            "-c",
            str(self.properties),
        )
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            tail = (result.stderr or result.stdout).strip().splitlines()[-1:]
            raise BrokerError(f"formatting Kafka storage failed: {' '.join(tail)}")

    def start(self) -> tuple[bool, float]:
        """Start the broker unless it runs; return (started_now, seconds until ready)."""
        began = time.monotonic()
        started = self.launch()
        try:
            self.wait_ready(began)
        except BrokerError:
            if started:
                self.stop()
            raise
        return started, time.monotonic() - began

    def launch(self) -> bool:
        """Spawn the broker unless it runs, without waiting for it; True if spawned now
        (a cluster spawns every node first: none is ready before a quorum is up)."""
        if self._recorded_pid() is not None:
            return False
        host = self.node.host
        for p in (self.node.port, self.node.controller_port):
            if _port_in_use(host, p):
                raise BrokerError(
                    f"port {host}:{p} is already in use; stop what holds it or set "
                    "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS / KEYPULSE_KAFKA_CONTROLLER_PORT"
                )
        classpath = self._classpath()
        self._write_properties()
        self._format_storage(classpath)
        cmd = self._java(
            classpath, "kafka.Kafka", str(self.properties), heap=self._settings.broker_heap
        )
        pid = self._spawn(cmd)
        self.pid_file.write_text(f"{pid}\n")
        return True

    def _spawn(self, cmd: list[str]) -> int:
        """Start the broker in its own session, its output appended to the log file.

        posix_spawn rather than Popen: the broker outlives this call (and often this
        process), so no Popen object is left to warn about a running child.
        """
        java = shutil.which(cmd[0])
        if java is None:
            raise BrokerError("java not found on PATH; Kafka needs Java 17 or newer")
        log_fd = os.open(self.log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            return os.posix_spawn(
                java,
                cmd,
                dict(os.environ),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_DUP2, log_fd, 1),
                    (os.POSIX_SPAWN_DUP2, log_fd, 2),
                ],
                setsid=True,
            )
        finally:
            os.close(log_fd)

    def wait_ready(self, began: float, brokers: int = 1) -> None:
        """Wait (from `began`, up to the start timeout) until this node answers Metadata
        listing at least `brokers` live brokers; raise if its process exits."""
        deadline = began + self._settings.start_timeout_s
        host, port = self.node.host, self.node.port
        while time.monotonic() < deadline:
            pid = self._recorded_pid()
            if pid is None:
                raise BrokerError(
                    f"Kafka exited during start-up; see {self.log_file}: {self._last_error()}"
                )
            try:
                if metadata_broker_count(host, port, timeout_s=1.0) >= brokers:
                    return
            except (OSError, ValueError, struct.error):
                pass
            time.sleep(0.2)
        raise BrokerError(
            f"Kafka not ready after {self._settings.start_timeout_s:.0f} s; see {self.log_file}"
        )

    def _last_error(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        errors = [ln for ln in lines if " ERROR " in ln or "Exception" in ln]
        return (errors or lines or ["no log"])[-1][:300]

    # -- stop -------------------------------------------------------------------------
    def kill(self) -> bool:
        """SIGKILL the recorded broker process (a crash, for fault tests); True if one ran.
        The pid file stays, naming a dead process, as after a real crash."""
        pid = self._recorded_pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGKILL)
        while _pid_alive(pid):
            time.sleep(0.05)
        return True

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop exactly the recorded broker process; True if one was running."""
        pid = self._recorded_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(pid):
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)
        return True


CLUSTER_FILE = "cluster.properties"


@dataclass(frozen=True)
class ClusterStatus:
    brokers: int
    nodes: tuple[tuple[NodeSpec, BrokerStatus], ...]

    @property
    def running(self) -> int:
        return sum(1 for _, s in self.nodes if s.pid is not None)


class LocalKafkaCluster:
    """`brokers` combined KRaft nodes under `root` (`root/node-<i>`), one static quorum.

    `root/cluster.properties` records the node count and the cluster id on first start;
    `recorded(root)` reads it back, so `status` and `stop` need no flag.
    """

    def __init__(
        self, settings: KafkaSettings, root: Path, brokers: int, jars: Path = JARS_DIR
    ) -> None:
        self._settings = settings
        self._root = root.resolve()
        self.brokers = brokers
        self.nodes = cluster_nodes(settings, brokers)
        self.cluster_file = self._root / CLUSTER_FILE
        self._cluster_id = self._read_record().get("cluster.id") or _new_cluster_id()
        self.members = tuple(
            LocalKafka(
                settings,
                self._root / f"node-{n.node_id}",
                jars,
                node=n,
                quorum=self.nodes,
                cluster_id=self._cluster_id,
            )
            for n in self.nodes
        )

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def _read_record(self) -> dict[str, str]:
        return read_cluster_record(self._root)

    @classmethod
    def recorded(cls, settings: KafkaSettings, root: Path) -> LocalKafkaCluster | None:
        """The cluster `kafka start --brokers N` recorded under `root`, if any."""
        count = read_cluster_record(root).get("brokers", "")
        return cls(settings, root, int(count)) if count.isdigit() else None

    def member(self, node_id: int) -> LocalKafka:
        return self.members[node_id - 1]

    def status(self) -> ClusterStatus:
        return ClusterStatus(self.brokers, tuple((m.node, m.status()) for m in self.members))

    def start(self) -> tuple[bool, float]:
        """Start every node not running; return (any started now, seconds until every
        node answers listing all `brokers` brokers)."""
        began = time.monotonic()
        self._root.mkdir(parents=True, exist_ok=True)
        recorded = self._read_record().get("brokers")
        if recorded is not None and recorded != str(self.brokers):
            raise BrokerError(
                f"{self._root} holds a cluster of {recorded} brokers; start it with "
                f"--brokers {recorded}, or stop it and remove that directory first"
            )
        if recorded is None:
            self.cluster_file.write_text(f"brokers={self.brokers}\ncluster.id={self._cluster_id}\n")
        started = False
        try:
            for member in self.members:
                started = member.launch() or started
            for member in self.members:
                member.wait_ready(began, self.brokers)
        except BrokerError:
            if started:
                self.stop()
            raise
        return started, time.monotonic() - began

    def stop(self, timeout_s: float = 30.0) -> int:
        """Stop exactly the recorded node processes; the number that were running."""
        return sum(1 for member in self.members if member.stop(timeout_s))


def read_cluster_record(root: Path) -> dict[str, str]:
    try:
        text = (root / CLUSTER_FILE).read_text()
    except OSError:
        return {}
    pairs = (line.partition("=") for line in text.splitlines() if "=" in line)
    return {k.strip(): v.strip() for k, _, v in pairs}


def cluster_env(cluster: LocalKafkaCluster) -> dict[str, str]:
    """The settings the worker and the API need to use `cluster`: all its brokers, and
    topics created with replication factor 3 (or the node count) and min ISR 2."""
    return {
        "KEYPULSE_KAFKA_BOOTSTRAP_SERVERS": cluster.bootstrap_servers,
        "KEYPULSE_KAFKA_REPLICATION_FACTOR": str(min(3, cluster.brokers)),
        "KEYPULSE_KAFKA_MIN_INSYNC_REPLICAS": str(min(2, cluster.brokers)),
    }


BrokerOrigin = Literal["started", "ours", "external"]


@dataclass(frozen=True)
class BrokerLease:
    """A broker answering at `bootstrap_servers`, and where it came from.

    `origin` is `started` when `ensure_broker` started it (the caller stops it),
    `ours` when the broker recorded under the same root was already running, and
    `external` when another process's broker answers there (never stopped by us).
    """

    bootstrap_servers: str
    origin: BrokerOrigin
    seconds: float

    @property
    def started(self) -> bool:
        return self.origin == "started"

    def describe(self) -> str:
        """One line for the console (`kafka started` marks a broker started now)."""
        at = self.bootstrap_servers
        if self.origin == "external":
            return f"kafka: using the broker already running at {at} (not ours)"
        verb = "started" if self.started else "already running"
        return f"kafka {verb}: ready at {at} in {self.seconds:.1f} s"


def ensure_broker(settings: KafkaSettings, root: Path) -> BrokerLease:
    """Start the local broker under `root` unless a broker already answers at
    `settings.bootstrap_servers`; return once one answers (raises `BrokerError`)."""
    broker = LocalKafka(settings, root)
    if broker.status().pid is None and broker_ready(settings.bootstrap_servers):
        return BrokerLease(settings.bootstrap_servers, "external", 0.0)
    started, seconds = broker.start()
    return BrokerLease(settings.bootstrap_servers, "started" if started else "ours", seconds)


@contextlib.contextmanager
def broker_running(settings: KafkaSettings, root: Path) -> Iterator[BrokerLease]:
    """`ensure_broker`, and on exit stop the broker only if this call started it."""
    lease = ensure_broker(settings, root)
    try:
        yield lease
    finally:
        if lease.started:
            LocalKafka(settings, root).stop()


def ensure_cluster(settings: KafkaSettings, root: Path, brokers: int) -> BrokerLease:
    """`ensure_broker` for a local cluster of `brokers` nodes under `root`."""
    cluster = LocalKafkaCluster(settings, root, brokers)
    if cluster.status().running == 0 and broker_ready(cluster.bootstrap_servers):
        return BrokerLease(cluster.bootstrap_servers, "external", 0.0)
    started, seconds = cluster.start()
    return BrokerLease(cluster.bootstrap_servers, "started" if started else "ours", seconds)
