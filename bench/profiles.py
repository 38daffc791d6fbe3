"""py-spy flame profiles of tarhold, kept with the results: an extra, unmeasured
run of each profiled workload with `py-spy record --subprocesses` on tarhold.

Per workload (`PROFILES`): `<stamp>-profile-<key>.svg` (flamegraph),
`<stamp>-profile-<key>.txt` (raw collapsed stacks, for speedscope or
flamegraph.pl) and `<stamp>-profile-<key>-top.txt` (the top frames by own
samples). py-spy writes one format per recording, so each workload runs twice.

A mixin of `bench.run.Bench`: the methods use its tarhold, settings and npm projects.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.load import run_load
from bench.npm import NpmProject, install
from bench.report import top_frames
from bench.scenarios import RESULTS, SCENARIOS, log
from bench.servers import Server

PROFILE_RATE = 250  # samples per second
ATTACH_SECONDS = 0.5  # py-spy's time to attach before the workload starts
STOP_TIMEOUT = 60.0
# key (in the file names) → what is profiled; a scenario key of bench.scenarios, or npm ci.
PROFILES = {"packument": "full", "small-tarball": "small_tarball", "npm-ci-warm": None}
FORMATS = {"flamegraph": ".svg", "raw": ".txt"}


def py_spy_binary() -> str | None:
    """py-spy on PATH or beside this Python (the venv's)."""
    found = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return found if Path(found).exists() else None


def profile_paths(stamp: str, key: str, results: Path = RESULTS) -> dict[str, Path]:
    """The files of one profile: `flamegraph` (.svg), `raw` (.txt) and `top` (-top.txt)."""
    paths = {fmt: results / f"{stamp}-profile-{key}{suffix}" for fmt, suffix in FORMATS.items()}
    paths["top"] = results / f"{stamp}-profile-{key}-top.txt"
    return paths


def format_top(top: list[tuple[str, int, float]]) -> str:
    """`top_frames` as the -top.txt file: own samples, share, frame."""
    return "self samples  share  frame\n" + "".join(
        f"{count:12d}  {share:5.1%}  {frame}\n" for frame, count, share in top)


class Profiles:
    """The py-spy profiles of `PROFILES`, for `Bench`."""

    settings: Any
    stamp: str
    tarhold: Server
    notes: list[str]
    raw: dict[str, Any]
    profile_files: list[str]
    npm_projects: dict[str, list[NpmProject]]
    guarded: Callable[[str, Callable[[], None]], None]

    def profile(self) -> None:
        """Each profile of `PROFILES` in turn; one that fails or cannot run leaves a note."""
        py_spy = py_spy_binary()
        if py_spy is None:
            self.notes.append("no profile: py-spy is not installed")
            return
        RESULTS.mkdir(parents=True, exist_ok=True)
        for key, scenario_key in PROFILES.items():
            if scenario_key is None:
                self.guarded(f"profile {key}", lambda key=key: self.profile_npm(py_spy, key))
            else:
                self.guarded(f"profile {key}",
                             lambda key=key, scenario_key=scenario_key: self.profile_load(py_spy, key, scenario_key))

    def profile_load(self, py_spy: str, key: str, scenario_key: str) -> None:
        """tarhold under the scenario's wrk load, for BENCH_DURATION (at least 2 s)."""
        scenario = next(scenario for scenario in SCENARIOS if scenario.key == scenario_key)
        duration = max(2.0, self.settings.duration)

        def load() -> None:
            run_load(self.tarhold.url + scenario.path, duration, self.settings.connections, scenario.headers)

        self.record_profile(py_spy, key, load)

    def profile_npm(self, py_spy: str, key: str) -> None:
        """tarhold through one warm `npm ci` (the npm rows' project, storage already full)."""
        projects = self.npm_projects.get(self.tarhold.name)
        if not projects:
            self.notes.append(f"profile {key} skipped: the npm ci rows did not run (BENCH_ROWS without npm,"
                              " no npm or BENCH_NPM=0)")
            return

        def one_install() -> None:
            result = install(projects[:1], self.tarhold.pid)
            if not result.ok:
                raise RuntimeError(f"npm ci failed: {result.error.strip().splitlines()[-1:]}")

        self.record_profile(py_spy, key, one_install)

    def record_profile(self, py_spy: str, key: str, workload: Callable[[], None]) -> None:
        """py-spy on tarhold for exactly the workload (stopped with SIGINT, as Ctrl-C), once per format."""
        paths = profile_paths(self.stamp, key)
        for fmt in FORMATS:
            log(f"profile {key}: py-spy ({fmt})")
            argv = [py_spy, "record", "--pid", str(self.tarhold.pid), "--rate", str(PROFILE_RATE),
                    "--subprocesses", "--nonblocking", "--format", fmt, "--output", str(paths[fmt])]
            spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            try:
                time.sleep(ATTACH_SECONDS)
                if spy.poll() is not None:
                    raise RuntimeError(f"py-spy exited at once: {spy.communicate()[1][-500:]}")
                workload()
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on Ctrl-C
                _, stderr = spy.communicate(timeout=STOP_TIMEOUT)
            finally:
                if spy.poll() is None:
                    spy.kill()
                    spy.wait()
            if spy.returncode != 0 or not paths[fmt].exists():
                raise RuntimeError(f"py-spy failed: {stderr[-500:]}")
        top = top_frames(paths["raw"].read_text())
        paths["top"].write_text(format_top(top))
        self.profile_files += [str(paths[fmt]) for fmt in (*FORMATS, "top")]
        self.raw.setdefault("profile_top", {})[key] = [{"frame": f, "samples": c, "share": sh} for f, c, sh in top]
