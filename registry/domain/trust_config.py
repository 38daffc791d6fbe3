"""The `trusted_publishing:` section of config.yaml: which OIDC issuers a CI job may prove itself with.

```yaml
trusted_publishing:
  token_ttl: 15m          # how long an exchanged publish token works (at most 1h)
  leeway: 60s             # clock skew allowed on exp / nbf / iat
  issuers:
    - type: github        # preset: github | gitlab | circleci | generic
      issuer: https://token.actions.githubusercontent.com
    - name: gitlab-corp   # what `type` a trust configuration names (default: the preset)
      type: gitlab
      issuer: GITLAB_URL  # a variable name: the URL comes from the environment
    - name: k8s
      type: generic       # trust configurations name the claims they require
      issuer: K8S_OIDC_ISSUER
      jwks_uri: K8S_OIDC_JWKS_URI  # when discovery is not reachable
      audience: npm:registry.corp.example   # default: npm:<this registry's host name>
      claims_map: {sub: sub}                 # trust claim name -> the token's claim name
```

The issuer URL is always written out: which identity provider may publish
is the operator's decision, never a default. A trust configuration's
`type` names an issuer by its `name`, or by its preset (`github` matches
every GitHub-type issuer, so `npm trust github` works unchanged).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from storage.base import ConfigError
from storage.options import parse_duration

PRESETS = ("github", "gitlab", "circleci", "generic")
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
URL = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
MAX_ISSUERS = 32
MAX_TOKEN_TTL = 3600.0
DEFAULT_TOKEN_TTL = 900.0
DEFAULT_LEEWAY = 60.0


@dataclass(frozen=True)
class Issuer:
    """One identity provider whose id tokens may be exchanged for a publish token."""

    name: str
    preset: str  # github | gitlab | circleci | generic: how trust claims are matched
    issuer: str  # the exact `iss` of its tokens
    jwks_uri: str | None = None  # None: from the discovery document
    audience: tuple[str, ...] = ()  # empty: `npm:<registry host>`, what the npm CLI asks for
    claims_map: Mapping[str, str] = field(default_factory=dict)

    def serves(self, trust_type: str) -> bool:
        """Whether a trust configuration of `trust_type` may be satisfied by this issuer's tokens."""
        return trust_type == self.name or (self.preset != "generic" and trust_type == self.preset)

    def claim(self, claims: Mapping[str, Any], name: str) -> Any:
        """The token's value for the trust claim `name` (renamed by `claims_map`)."""
        return claims.get(self.claims_map.get(name, name))


@dataclass(frozen=True)
class TrustedPublishingConfig:
    issuers: tuple[Issuer, ...] = ()
    token_ttl: float = DEFAULT_TOKEN_TTL
    leeway: float = DEFAULT_LEEWAY

    def issuer(self, iss: str) -> Issuer | None:
        return next((i for i in self.issuers if i.issuer == iss), None)

    def types(self) -> set[str]:
        """The `type` values a trust configuration may name here."""
        names = {i.name for i in self.issuers}
        return names | {i.preset for i in self.issuers if i.preset != "generic"}

    def preset_of(self, trust_type: str) -> str | None:
        """How a trust configuration of `trust_type` is matched: its preset; None when unknown."""
        return next((i.preset for i in self.issuers if i.serves(trust_type)), None)


def parse_trusted_publishing(raw: Any) -> TrustedPublishingConfig:
    key = "trusted_publishing"
    if raw is None:
        return TrustedPublishingConfig()
    if not isinstance(raw, dict) or set(raw) - {"issuers", "token_ttl", "leeway"}:
        raise ConfigError(key, "must be a mapping with issuers, token_ttl, leeway")
    ttl = parse_duration(f"{key}.token_ttl", raw.get("token_ttl", DEFAULT_TOKEN_TTL))
    if not 60 <= ttl <= MAX_TOKEN_TTL:
        raise ConfigError(f"{key}.token_ttl", "must be between 1m and 1h: exchanged tokens are short-lived")
    leeway = parse_duration(f"{key}.leeway", raw.get("leeway", DEFAULT_LEEWAY))
    if leeway > 300:
        raise ConfigError(f"{key}.leeway", "must be at most 5m")
    items = raw.get("issuers") or []
    if not isinstance(items, list) or len(items) > MAX_ISSUERS:
        raise ConfigError(f"{key}.issuers", f"must be a list of at most {MAX_ISSUERS} issuers")
    issuers = tuple(parse_issuer(f"{key}.issuers[{i}]", item) for i, item in enumerate(items))
    for attr in ("name", "issuer"):
        values = [getattr(i, attr) for i in issuers]
        if len(set(values)) != len(values):
            raise ConfigError(f"{key}.issuers", f"two issuers have the same {attr}")
    return TrustedPublishingConfig(issuers=issuers, token_ttl=ttl, leeway=leeway)


def parse_issuer(key: str, raw: Any) -> Issuer:
    fields = {"name", "type", "issuer", "jwks_uri", "audience", "claims_map"}
    if not isinstance(raw, dict) or set(raw) - fields:
        raise ConfigError(key, f"must be a mapping of {', '.join(sorted(fields))}")
    preset = raw.get("type", "generic")
    if preset not in PRESETS:
        raise ConfigError(f"{key}.type", f"must be one of {', '.join(PRESETS)}")
    name = raw.get("name", preset)
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigError(f"{key}.name", "must be a short lowercase name (letters, digits, . _ -)")
    if name in PRESETS and name != preset:
        raise ConfigError(f"{key}.name", f"{name!r} is a preset name; give this {preset} issuer another name")
    issuer = raw.get("issuer")
    if not isinstance(issuer, str) or not URL.match(issuer):
        raise ConfigError(f"{key}.issuer", "must be the issuer's URL, exactly as its tokens' iss claim says")
    jwks_uri = raw.get("jwks_uri")
    if jwks_uri is not None and (not isinstance(jwks_uri, str) or not URL.match(jwks_uri)):
        raise ConfigError(f"{key}.jwks_uri", "must be an http(s) URL")
    audience = raw.get("audience", [])
    audience = [audience] if isinstance(audience, str) else audience
    if not isinstance(audience, list) or not all(isinstance(a, str) and a for a in audience):
        raise ConfigError(f"{key}.audience", "must be a string or a list of strings")
    claims_map = raw.get("claims_map") or {}
    if not isinstance(claims_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in claims_map.items()
    ):
        raise ConfigError(f"{key}.claims_map", "must map trust claim names to the token's claim names")
    return Issuer(
        name=name, preset=preset, issuer=issuer,
        jwks_uri=jwks_uri, audience=tuple(audience), claims_map=dict(claims_map),
    )
