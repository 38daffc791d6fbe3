"""Config loading: every option parsed, env-var references, one message per mistake."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from registry.config import load_config, parse_config
from registry.domain.rules import rule_for
from storage.base import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_empty_config_gives_the_embedded_default(tmp_path: Path) -> None:
    config = parse_config({}, config_dir=tmp_path)
    assert (config.host, config.port) == ("localhost", 4873)
    assert config.store.backend == "fs"
    assert config.store.path == str(tmp_path / "storage")
    assert config.max_body_size == 10 * 1024 * 1024
    assert [r.pattern for r in config.packages] == ["@*/*", "**"]
    assert config.packages[0].publish == ("$authenticated",)
    assert config.uplinks == {}


def test_every_option_is_parsed(tmp_path: Path) -> None:
    config = parse_config(
        {
            "listen": "0.0.0.0:8080",
            "storage": "/var/lib/tarhold",
            "max_body_size": "50mb",
            "url_prefix": "/npm/",
            "public_url": "https://npm.example.com/npm",
            "auth": {"htpasswd": {"file": "./htpasswd", "max_users": -1}},
            "log": {"type": "stdout", "format": "json", "level": "warn"},
            "uplinks": {
                "upstream": {
                    "url": "http://127.0.0.1:9/registry/",
                    "timeout": "10s",
                    "maxage": "5m",
                    "max_fails": 3,
                    "fail_timeout": "1h",
                    "cache": False,
                    "headers": {"X-Team": "ci"},
                    "auth": {"type": "bearer", "token": "t0k"},
                    "strict_ssl": False,
                    "ca": "/etc/ssl/ca.pem",
                }
            },
            "packages": {
                "@acme/*": {
                    "access": "$authenticated",
                    "publish": "alice bob",
                    "unpublish": ["alice"],
                    "storage": "scoped",
                    "publish_staged": True,
                },
                "**": {"access": "$all", "publish": "$authenticated", "proxy": "upstream"},
            },
        },
        config_dir=tmp_path,
    )
    assert (config.host, config.port) == ("0.0.0.0", 8080)
    assert config.store.path == "/var/lib/tarhold"
    assert config.max_body_size == 50 * 1024 * 1024
    assert config.public_url == "https://npm.example.com/npm"
    assert config.url_prefix == "/npm"
    assert config.auth.max_users == -1 and config.auth.htpasswd_file == "./htpasswd"
    assert config.log.format == "json" and config.log.level == logging.WARNING
    up = config.uplinks["upstream"]
    assert up.url == "http://127.0.0.1:9/registry"
    assert (up.timeout, up.maxage, up.max_fails, up.fail_timeout) == (10, 300, 3, 3600)
    assert up.cache is False and up.strict_ssl is False and up.ca == "/etc/ssl/ca.pem"
    assert up.headers == {"X-Team": "ci"}
    assert up.auth is not None and (up.auth.type, up.auth.token) == ("bearer", "t0k")
    acme = rule_for(config.packages, "@acme/ui")
    assert acme is not None and acme.storage == "scoped"
    assert acme.publish == ("alice", "bob") and acme.unpublish == ("alice",)
    assert acme.publish_staged is True
    other = rule_for(config.packages, "left-pad")
    assert other is not None and other.proxy == ("upstream",)
    assert other.unpublish == other.publish  # unpublish falls back to publish
    assert other.publish_staged is False


def test_the_cache_budgets_are_sizes_and_zero_turns_each_off() -> None:
    cache = parse_config({"cache": {"packument_memory": "16mb", "parsed_memory": 0, "parsed_max_size": "1mb"}}).cache
    assert (cache.packument_memory, cache.parsed_memory, cache.parsed_max_size) == (16 << 20, 0, 1 << 20)
    defaults = parse_config({}).cache
    assert (defaults.packument_memory, defaults.parsed_memory, defaults.parsed_max_size) == (48 << 20, 96 << 20, 4 << 20)


def test_uplink_defaults_follow_verdaccio_except_max_fails() -> None:
    up = parse_config({"uplinks": {"u": {"url": "http://127.0.0.1:9"}}}).uplinks["u"]
    assert (up.timeout, up.maxage, up.fail_timeout, up.cache) == (30, 120, 300, True)
    assert up.max_fails == 5


def test_a_value_naming_a_set_environment_variable_takes_its_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TARHOLD_TEST_UPSTREAM", "http://127.0.0.1:7/")
    monkeypatch.setenv("TARHOLD_TEST_BUCKET", "bucket-from-env")
    config = parse_config(
        {
            "uplinks": {"up": {"url": "TARHOLD_TEST_UPSTREAM"}},
            "store": {"aws-s3-storage": {"bucket": "TARHOLD_TEST_BUCKET", "region": "us-east-1"}},
        }
    )
    assert config.uplinks["up"].url == "http://127.0.0.1:7"
    assert config.store.backend == "aws-s3-storage"
    assert config.store.section["bucket"] == "bucket-from-env"


def test_an_unset_variable_name_is_kept_as_the_literal_value() -> None:
    config = parse_config({"store": {"aws-s3-storage": {"bucket": "NO_SUCH_TARHOLD_VAR"}}})
    assert config.store.section["bucket"] == "NO_SUCH_TARHOLD_VAR"


def test_uplink_token_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NPM_TOKEN", "from-env")
    up = parse_config(
        {"uplinks": {"u": {"url": "http://127.0.0.1:9", "auth": {"type": "bearer", "token_env": True}}}}
    ).uplinks["u"]
    assert up.auth is not None and up.auth.token == "from-env"


@pytest.mark.parametrize(
    ("raw", "key", "problem"),
    [
        ({"listen": "nowhere"}, "listen", "is not host:port"),
        ({"listen": "127.0.0.1:99999"}, "listen", "out of range"),
        ({"max_body_size": "lots"}, "max_body_size", "is not a size"),
        ({"storage": 42}, "storage", "directory path"),
        ({"uplink": {}}, "uplink", "unknown option"),
        ({"uplinks": {"u": {}}}, "uplinks.u.url", "non-empty string"),
        ({"uplinks": {"u": {"url": "ftp://x"}}}, "uplinks.u.url", "http(s) URL"),
        ({"uplinks": {"u": {"url": "NO_SUCH_TARHOLD_VAR"}}}, "uplinks.u.url", "is not set"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "timeout": "soon"}}}, "uplinks.u.timeout", "duration"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "max_fails": -1}}}, "uplinks.u.max_fails", ">= 0"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "maxage": "2 parsecs"}}}, "uplinks.u.maxage", "duration"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "cache": "maybe"}}}, "uplinks.u.cache", "true or false"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "retries": 3}}}, "uplinks.u.retries", "unknown"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "prefetch": "on"}}}, "uplinks.u.prefetch", "true or false"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "prefetch_depth": 9}}}, "uplinks.u.prefetch_depth",
         "from 1 to 5"),
        ({"uplinks": {"u": {"url": "http://upstream.test", "prefetch_concurrency": 0}}},
         "uplinks.u.prefetch_concurrency", "from 1 to 64"),
        (
            {"uplinks": {"u": {"url": "http://upstream.test", "auth": {"type": "digest", "token": "x"}}}},
            "uplinks.u.auth.type",
            "bearer or basic",
        ),
        (
            {"uplinks": {"u": {"url": "http://upstream.test", "auth": {"type": "bearer", "token_env": "NO_SUCH_TARHOLD_VAR"}}}},
            "uplinks.u.auth.token_env",
            "is not set",
        ),
        ({"packages": {"**": {"proxy": "nope"}}}, "packages.**.proxy", "no uplink named"),
        ({"packages": {"**": {"acess": "$all"}}}, "packages.**.acess", "unknown package rule option"),
        ({"packages": {"**": {"access": 3}}}, "packages.**.access", "space-separated"),
        ({"packages": {"**": {"storage": "../up"}}}, "packages.**.storage", "relative folder"),
        ({"packages": {"**": {"publish_staged": "yes"}}}, "packages.**.publish_staged", "true or false"),
        ({"packages": ["**"]}, "packages", "mapping"),
        ({"store": {"gcs": {}}}, "store.gcs", "unknown store"),
        ({"store": {"aws-s3-storage": {}}}, "store.aws-s3-storage.bucket", ""),
        ({"store": {"aws-s3-storage": {"bucket": "b", "bukket": "c"}}}, "store.aws-s3-storage.bukket", "unknown"),
        ({"store": {"aws-s3-storage": {"bucket": "b", "s3ForcePathStyle": "yes"}}},
         "store.aws-s3-storage.s3ForcePathStyle", ""),
        ({"auth": {"max_users": "many"}}, "auth.max_users", "whole number"),
        ({"log": {"level": "loud"}}, "log.level", "must be one of"),
        ({"log": {"format": "xml"}}, "log.format", "pretty or json"),
        ({"public_url": "npm.example.com"}, "public_url", "http(s) URL"),
        ({"cache": {"parsed_memory": "plenty"}}, "cache.parsed_memory", "is not a size"),
        ({"cache": {"packument_memery": "1mb"}}, "cache.packument_memery", "unknown"),
    ],
)
def test_each_invalid_config_names_its_key(raw: dict, key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(raw)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"config: {key}: ")


def test_verdaccio_only_options_are_accepted_and_ignored() -> None:
    config = parse_config({"web": {"title": "x"}, "plugins": "./plugins", "middlewares": {"audit": {"enabled": True}}})
    assert config.store.backend == "fs"


def test_a_verdaccio_s3_config_loads_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """
storage: ./storage
plugins: ./plugins
web:
  title: Verdaccio
auth:
  htpasswd:
    file: ./htpasswd
    max_users: 1000
uplinks:
  npmjs:
    url: TARHOLD_TEST_UNSET_UPSTREAM_URL_X
store:
  aws-s3-storage:
    bucket: my-bucket
    keyPrefix: some-prefix
    region: eu-west-1
    endpoint: http://127.0.0.1:9000
    s3ForcePathStyle: true
    tarballACL: private
    accessKeyId: AKIA
    secretAccessKey: s3cr3t
    sessionToken: tok
    proxy: http://127.0.0.1:3128
packages:
  '@*/*':
    access: $all
    publish: $authenticated
    unpublish: $authenticated
    proxy: npmjs
  '**':
    access: $all
    publish: $authenticated
    proxy: npmjs
middlewares:
  audit:
    enabled: true
logs: { type: stdout, format: pretty, level: http }
listen: 0.0.0.0:4873
""".replace("TARHOLD_TEST_UNSET_UPSTREAM_URL_X", "http://127.0.0.1:1/")
    )
    config = load_config(path)
    assert config.store.backend == "aws-s3-storage"
    assert config.store.section["keyPrefix"] == "some-prefix"
    assert config.uplinks["npmjs"].url == "http://127.0.0.1:1"


def test_yaml_that_does_not_parse_is_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("listen: [unclosed\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_config(path)


def test_missing_config_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yaml")


def test_relative_storage_is_relative_to_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("storage: ./files\n")
    assert load_config(path).store.path == str(tmp_path / "files")


def test_the_example_config_documents_a_config_that_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TARHOLD_UPSTREAM_URL", "http://127.0.0.1:9/")
    example = tmp_path / "config.yaml"
    shutil.copy(ROOT / "config.yaml.example", example)
    config = load_config(example)
    assert config.port == 4873
    assert config.packages


def test_the_example_config_mentions_every_option() -> None:
    text = (ROOT / "config.yaml.example").read_text()
    for option in [
        "listen", "storage", "store", "aws-s3-storage", "bucket", "keyPrefix", "region", "endpoint",
        "s3ForcePathStyle", "tarballACL", "accessKeyId", "secretAccessKey", "sessionToken", "proxy",
        "dynamoTableName", "dynamoEndpoint", "dynamoRegion", "uplinks", "url", "timeout", "maxage",
        "max_fails", "fail_timeout", "cache", "headers", "auth", "token_env", "strict_ssl", "ca",
        "packages", "access", "publish", "unpublish", "max_body_size", "url_prefix", "public_url",
        "log", "format", "level", "max_users", "abort_multipart_after", "server", "header_timeout",
        "max_connections_per_address", "keepalive_timeout", "drain_timeout", "maxAttempts", "retryMode",
        "connectTimeout", "readTimeout", "policy", "min_age", "freeze_before", "unknown_age", "applies_to",
        "strategy", "exclude_deprecated", "block", "allow", "filters", "publish_staged",
        "trusted_publishing", "token_ttl", "leeway", "issuers", "issuer", "jwks_uri", "audience", "claims_map",
        "orgs", "create_packages", "prefetch", "prefetch_depth", "prefetch_concurrency",
        "packument_memory", "parsed_memory", "parsed_max_size",
    ]:
        assert f"{option}:" in text, option
