"""The `auth:` section of config.yaml: registration, token rate limits, X-Forwarded-For.

```yaml
auth:
  max_users: 1000            # -1 closes registration
  rate_limit:
    requests_per_minute: 600 # per token, per instance; absent or 0: no limit
  trust_forwarded_for: false # true, or the proxies' CIDRs: [10.0.0.0/8]
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from storage.base import ConfigError
from storage.options import parse_bool


@dataclass(frozen=True)
class AuthConfig:
    max_users: int | None = None  # None: unlimited; -1: registration closed
    htpasswd_file: str | None = None
    # Requests per minute per token (per instance); None: no limit. A token's
    # own `rate_limit` overrides it.
    rate_limit: int | None = None
    # X-Forwarded-For is read for CIDR checks only when set: True trusts the
    # one proxy in front (the header's last entry); a tuple of CIDRs trusts
    # the header from those peers and takes its last entry outside them.
    trust_forwarded_for: bool = False
    trusted_proxies: tuple[str, ...] = ()
    # Every user must have two-factor auth on to publish, review stages or make tokens.
    require_2fa: bool = False


def parse_auth(raw: Any) -> AuthConfig:
    if raw is None:
        return AuthConfig()
    if not isinstance(raw, dict):
        raise ConfigError("auth", "must be a mapping")
    max_users = raw.get("max_users")
    htpasswd = raw.get("htpasswd")
    htpasswd_file = None
    if isinstance(htpasswd, dict):
        htpasswd_file = htpasswd.get("file")
        max_users = htpasswd.get("max_users", max_users)
    if max_users is not None:
        if isinstance(max_users, bool) or not isinstance(max_users, int) or max_users < -1:
            raise ConfigError("auth.max_users", "must be a whole number, or -1 to close registration")
    trust, proxies = parse_forwarded_for(raw.get("trust_forwarded_for", False))
    return AuthConfig(
        max_users=max_users, htpasswd_file=htpasswd_file,
        rate_limit=parse_rate_limit(raw.get("rate_limit")),
        trust_forwarded_for=trust, trusted_proxies=proxies,
        require_2fa=parse_bool("auth.require_2fa", raw.get("require_2fa", False)),
    )


def parse_rate_limit(raw: Any) -> int | None:
    """`auth.rate_limit: {requests_per_minute: N}`; absent, null or 0: no limit."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"requests_per_minute"}:
        raise ConfigError("auth.rate_limit", "must be a mapping with requests_per_minute")
    value = raw.get("requests_per_minute")
    if value is None or value == 0:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError("auth.rate_limit.requests_per_minute", "must be a whole number (0: no limit)")
    return value


def parse_forwarded_for(raw: Any) -> tuple[bool, tuple[str, ...]]:
    """`auth.trust_forwarded_for`: true, false, or a list of the proxies' addresses or CIDRs."""
    key = "auth.trust_forwarded_for"
    if isinstance(raw, bool):
        return raw, ()
    if isinstance(raw, str) and raw.lower() in {"true", "false"}:
        return raw.lower() == "true", ()
    if not isinstance(raw, list) or not raw:
        raise ConfigError(key, "must be true, false, or a list of the proxies' CIDRs")
    proxies = []
    for value in raw:
        try:
            proxies.append(str(ipaddress.ip_network(str(value).strip(), strict=False)))
        except ValueError:
            raise ConfigError(key, f"{value!r} is not an IP address or CIDR") from None
    return True, tuple(proxies)
