"""The stored manifest's dependencies, scripts and bin come from the tarball's package.json."""

from __future__ import annotations

from registry.domain.packed_manifest import from_tarball, normalized_bin


def test_dependencies_and_scripts_are_the_tarballs() -> None:
    sent = {"name": "a", "version": "1.0.0", "dependencies": {"left-pad": "^1.0.0"}, "scripts": {},
            "description": "as sent"}
    packed = {"name": "a", "version": "1.0.0", "dependencies": {"evil": "1.0.0"},
              "scripts": {"postinstall": "node steal.js"}}
    stored = from_tarball(sent, packed)
    assert stored["dependencies"] == {"evil": "1.0.0"}
    assert stored["scripts"] == {"postinstall": "node steal.js"}
    assert stored["description"] == "as sent"  # what does not install stays as sent


def test_a_field_the_tarball_lacks_is_dropped() -> None:
    sent = {"name": "a", "version": "1.0.0", "optionalDependencies": {"x": "1"}, "bin": {"a": "cli.js"}}
    assert from_tarball(sent, {"name": "a", "version": "1.0.0"}) == {"name": "a", "version": "1.0.0"}


def test_bin_is_normalized_as_npm_does() -> None:
    assert normalized_bin("@scope/tool", "./bin/cli.js") == {"tool": "bin/cli.js"}
    assert normalized_bin("tool", {"t": "./cli.js", "other": "lib/../x.js"}) == {"t": "cli.js", "other": "x.js"}
    sent = {"name": "tool", "version": "1.0.0", "bin": {"tool": "cli.js"}}
    assert from_tarball(sent, {"name": "tool", "bin": "./cli.js"})["bin"] == {"tool": "cli.js"}


def test_a_bin_derived_from_directories_bin_is_kept() -> None:
    sent = {"name": "tool", "version": "1.0.0", "bin": {"tool": "bin/tool"}}
    packed = {"name": "tool", "version": "1.0.0", "directories": {"bin": "./bin"}}
    assert from_tarball(sent, packed)["bin"] == {"tool": "bin/tool"}


def test_npms_gyp_install_script_is_kept() -> None:
    sent = {"name": "native", "version": "1.0.0", "scripts": {"install": "node-gyp rebuild", "test": "x"}}
    packed = {"name": "native", "version": "1.0.0", "scripts": {"test": "x"}}
    assert from_tarball(sent, packed)["scripts"] == {"test": "x", "install": "node-gyp rebuild"}
