"""pnpm and yarn classic install what npm published to a real `tarhold serve`.

Two packages, published once per backend with npm: a scoped library and an
unscoped app that depends on it (`^1.0.0`, so the clients resolve a range
and pick 1.1.0, not the older 1.0.0). Each client installs the app into a
fresh project in a temporary directory, with its store, cache, HOME and
lockfile there too, talking to nothing but the local server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.client_projects import new_project
from tests.e2e.fixtures import (
    CLIENT_TIMEOUT,
    ROOT,
    Npm,
    Result,
    TarholdServer,
    client_bin,
    index_js,
    installed_file,
    run_client,
    unique_name,
    write_package,
)

pytestmark = pytest.mark.npm

LOCKFILES = ("package-lock.json", "pnpm-lock.yaml", "yarn.lock")


@dataclass(frozen=True)
class Published:
    app: str
    lib: str

    @property
    def app_index(self) -> str:
        return app_index(self.app, self.lib)


def app_index(app: str, lib: str) -> str:
    return f"module.exports = {json.dumps(app + '@1.0.0 uses ')} + require({json.dumps(lib)});\n"


@pytest.fixture(scope="module")
def published(
    tarhold: TarholdServer, tmp_path_factory: pytest.TempPathFactory, npm_cli: str
) -> Published:
    """`lib` 1.0.0 and 1.1.0 (scoped) and `app` 1.0.0 depending on `lib@^1.0.0`, by npm."""
    base = tmp_path_factory.mktemp("publisher")
    user = unique_name("publisher")
    npm = Npm.create(tarhold, base / "home", user, tarhold.add_user(user))
    lib = f"@e2e/{unique_name('lib')}"
    app = unique_name("e2e-app")
    for version in ("1.0.0", "1.1.0"):
        npm.publish(write_package(base / f"lib-{version}", lib, version), "--access", "public")
    directory = write_package(
        base / "app", app, "1.0.0", dependencies={lib: "^1.0.0"}, index=app_index(app, lib)
    )
    npm.publish(directory)
    return Published(app, lib)


@pytest.fixture(autouse=True)
def no_lockfile_in_the_repo() -> Iterator[None]:
    """Whatever the clients do, they do it in temporary directories."""
    before = {name for name in LOCKFILES if (ROOT / name).exists()}
    yield
    after = {name for name in LOCKFILES if (ROOT / name).exists()}
    assert after <= before, f"a client wrote {sorted(after - before)} into {ROOT}"


def check_installed(project: Path, env: dict[str, str], published: Published) -> None:
    """The app and the library it needs are there, and node resolves one from the other."""
    assert installed_file(project, published.app) == published.app_index
    program = f"process.stdout.write(require({json.dumps(published.app)}))"
    result = run_client(["node", "-e", program], cwd=project, env=env, timeout=30)
    assert result.returncode == 0, result.explain()
    assert result.stdout == f"{published.app}@1.0.0 uses {published.lib}@1.1.0"
    manifest = json.loads((project / "package.json").read_text())
    assert manifest["dependencies"][published.app] in {"1.0.0", "^1.0.0"}


def ok(result: Result) -> Result:
    assert result.returncode == 0, result.explain()
    return result


def test_pnpm_installs_a_package_and_its_scoped_dependency(
    tarhold: TarholdServer, published: Published, tmp_path: Path
) -> None:
    pnpm = client_bin("pnpm")
    project, env = new_project(tmp_path)
    # The registry through the project's .npmrc, as a team would commit it.
    (project / ".npmrc").write_text(f"registry={tarhold.url}\n")
    ok(run_client(
        [
            str(pnpm), "add", f"{published.app}@1.0.0",
            "--store-dir", str(tmp_path / "pnpm-store"),
            "--cache-dir", str(tmp_path / "pnpm-cache"),
            "--reporter=append-only", "--config.update-notifier=false",
        ],
        cwd=project, env=env, timeout=CLIENT_TIMEOUT,
    ))
    check_installed(project, env, published)
    assert f"{published.lib}@1.1.0" in (project / "pnpm-lock.yaml").read_text()
    # A second project installs from the lockfile alone (pnpm install).
    second = tmp_path / "second"
    second.mkdir()
    for name in ("package.json", "pnpm-lock.yaml", ".npmrc"):
        (second / name).write_text((project / name).read_text())
    ok(run_client(
        [
            str(pnpm), "install", "--frozen-lockfile",
            "--store-dir", str(tmp_path / "pnpm-store-2"),
            "--cache-dir", str(tmp_path / "pnpm-cache-2"),
            "--reporter=append-only", "--config.update-notifier=false",
        ],
        cwd=second, env=env, timeout=CLIENT_TIMEOUT,
    ))
    check_installed(second, env, published)


def test_yarn_classic_installs_a_package_and_its_scoped_dependency(
    tarhold: TarholdServer, published: Published, tmp_path: Path
) -> None:
    yarn = client_bin("yarn")
    project, env = new_project(tmp_path)
    env.update({"YARN_IGNORE_PATH": "1", "YARN_DISABLE_SELF_UPDATE_CHECK": "true"})
    ok(run_client(
        [
            str(yarn), "add", f"{published.app}@1.0.0",
            "--registry", tarhold.url,
            "--cache-folder", str(tmp_path / "yarn-cache"),
            "--non-interactive", "--no-progress", "--network-timeout", "30000",
            "--mutex", f"file:{tmp_path / 'yarn-mutex'}",
        ],
        cwd=project, env=env, timeout=CLIENT_TIMEOUT,
    ))
    check_installed(project, env, published)
    assert installed_file(project, published.lib) == index_js(published.lib, "1.1.0")
    lock = (project / "yarn.lock").read_text()
    assert f"{tarhold.url}{published.lib}/-/" in lock.replace("%2f", "/").replace("%2F", "/")
