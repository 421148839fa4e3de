"""Start, stop and inspect the local Kafka broker (KRaft, broker+controller, one node).

`ensure_broker` / `broker_running` are the one way to "start a broker unless one
answers": the CLI (`kafka start`, `up`, `demo`), the test session and the benchmarks use
them. `LocalKafka` is the process itself, for callers that must own and restart it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from infra.kafka.probe import broker_ready
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


class LocalKafka:
    """One broker whose storage, log and pid file live under `root`."""

    def __init__(self, settings: KafkaSettings, root: Path, jars: Path = JARS_DIR) -> None:
        self._settings = settings
        self._root = root.resolve()
        self._jars = jars
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
        ready = pid is not None and broker_ready(self._settings.bootstrap_servers)
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
        host, port = self._settings.first_server
        cport = self._settings.controller_port
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{host}:{cport}",
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(self.data_dir),
            "num.partitions": "4",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "8",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "message.max.bytes": str(16 * 1024 * 1024),
            "log.retention.check.interval.ms": "60000",
        }
        self._root.mkdir(parents=True, exist_ok=True)
        self.properties.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))

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
        cluster_id = uuid.uuid4().bytes
        import base64

        cid = base64.urlsafe_b64encode(cluster_id).decode().rstrip("=")
        cmd = self._java(
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            f"--cluster-id={cid}",
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
        pid = self._recorded_pid()
        if pid is not None:
            self._wait_ready(pid, began)
            return False, time.monotonic() - began
        host, port = self._settings.first_server
        for p in (port, self._settings.controller_port):
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
        try:
            self._wait_ready(pid, began)
        except BrokerError:
            self.stop()
            raise
        return True, time.monotonic() - began

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

    def _wait_ready(self, pid: int, began: float) -> None:
        deadline = began + self._settings.start_timeout_s
        while time.monotonic() < deadline:
            if not _pid_alive(pid):
                raise BrokerError(
                    f"Kafka exited during start-up; see {self.log_file}: {self._last_error()}"
                )
            if broker_ready(self._settings.bootstrap_servers, timeout_ms=1000):
                return
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
