"""Run-time policy rules in the registry database: the emergency brake, shared by every instance.

A rule an admin adds (`tarhold policy block`, `POST /-/tarhold/policy`) or
an advisory import writes is one `POLICY`/`{id}` item. After every change
the writer puts a new random stamp in `CONFIG`/`POLICYSTAMP`; each process
reads that one small item every `POLL_SECONDS` and reloads the rules when
it changed (`MirrorPolicy.watch`), so a block reaches every instance within
5 seconds, like a token revocation.

The item keeps the rule as written (package or scope, range, reason,
expiry, strategy), plus who made it and when; `rule_of` reads it back
through the same parser as the config, so a rule means the same wherever it
was written. An expiring rule carries the database's TTL too: it stops at
`expires` (Rule.active) and is swept later.
"""

from __future__ import annotations

import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

from registry.domain.clock import now_iso
from registry.domain.errors import BadRequest, ConflictError, NotFoundError
from registry.domain.policy_rules import (
    Rule,
    RuleKind,
    Source,
    parse_moment,
    parse_rule,
)
from storage.base import ConfigError, Conflict, NotFound, RegistryDatabase
from storage.options import parse_duration

LOG = logging.getLogger(__name__)

POLICY_PK = "POLICY"
STAMP_PK, STAMP_SK = "CONFIG", "POLICYSTAMP"
POLL_SECONDS = 2.0
# Every process holds every rule: bounded, with room for a full malicious-package feed.
MAX_RULES = 200_000
RULE_FIELDS = ("package", "scope", "versions", "reason", "expires", "strategy")
MAX_ID = 128
DURATION = re.compile(r"(\s*\d+(\.\d+)?\s*(ms|s|m|h|d|w))+")


def new_rule_id() -> str:
    return f"r-{secrets.token_hex(4)}"


def expiry_of(value: Any, now: datetime) -> datetime | None:
    """`--expires 30d` (a duration from now) or a date; None when not given."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and DURATION.fullmatch(value.strip()):
        try:
            moment = now + timedelta(seconds=parse_duration("expires", value.strip()))
        except OverflowError:  # `99999999999d`: past what a datetime holds
            raise ConfigError("expires", "is too far in the future") from None
        if moment <= now:
            raise ConfigError("expires", "must be a duration longer than 0")
        return moment
    moment = parse_moment("expires", value)
    if moment <= now:
        raise ConfigError("expires", "is in the past")
    return moment


def rule_item(
    spec: dict[str, Any], *, kind: RuleKind, by: str, source: Source = "runtime", now: datetime,
    rule_id: str | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The database item for a rule spec (`{package|scope, versions, reason, expires, strategy}`).

    Validated exactly as a config rule is; BadRequest naming the field otherwise.
    """
    rule_id = rule_id or new_rule_id()
    if not rule_id or len(rule_id) > MAX_ID or not all(c.isalnum() or c in "-_.:" for c in rule_id):
        raise BadRequest(f"invalid rule id {rule_id!r}")
    unknown = set(spec) - set(RULE_FIELDS)
    if unknown:
        raise BadRequest(f"unknown rule field {sorted(unknown)[0]!r} (known: {', '.join(RULE_FIELDS)})")
    raw = {key: spec[key] for key in RULE_FIELDS if spec.get(key) not in (None, "")}
    if "package" not in raw and "scope" not in raw:
        # A rule over every package is a config decision (`policy: '**'`), never a typo away.
        raise BadRequest("invalid rule: a rule needs a package or a scope")
    try:
        expires = expiry_of(raw.pop("expires", None), now)
        if expires is not None:
            raw["expires"] = expires.replace(microsecond=0).isoformat().replace("+00:00", "Z")
        parse_rule("rule", raw, kind=kind, rule_id=rule_id, source=source)
    except ConfigError as exc:
        raise BadRequest(f"invalid rule: {exc.key}: {exc.problem}") from None
    return {"id": rule_id, "kind": kind, **raw, "source": source, "by": by, "created": now_iso(), **(extra or {})}


def rule_of(item: dict[str, Any]) -> Rule | None:
    """The Rule an item holds; None (logged) for an item this version cannot read."""
    raw = {key: item[key] for key in RULE_FIELDS if item.get(key) is not None}
    try:
        return parse_rule(
            f"policy rule {item.get('id')}", raw, kind=item["kind"], rule_id=str(item["id"]),
            source=item.get("source", "runtime"),
        )
    except (ConfigError, KeyError) as exc:
        LOG.error("policy rule %s in the database is unreadable and is ignored: %s", item.get("id"), exc)
        return None


async def list_rule_items(db: RegistryDatabase) -> list[dict[str, Any]]:
    """Every stored rule item, in id order."""
    items = []
    async for _, item in db.query(POLICY_PK):
        items.append(item)
        if len(items) >= MAX_RULES:
            LOG.error("more than %d policy rules are stored; the rest are ignored", MAX_RULES)
            break
    return items


async def load_rules(db: RegistryDatabase) -> list[Rule]:
    return [rule for item in await list_rule_items(db) if (rule := rule_of(item)) is not None]


def _ttl(item: dict[str, Any]) -> int | None:
    """The database TTL of an expiring rule: a day after it stops (it is inert by then)."""
    expires = item.get("expires")
    return int(parse_moment("expires", expires).timestamp()) + 86400 if expires else None


async def put_rule(db: RegistryDatabase, item: dict[str, Any], *, announce: bool = True) -> None:
    """Store (or replace) one rule item and, unless told not to, tell every instance."""
    await db.put(POLICY_PK, item["id"], item, expires=_ttl(item))
    if announce:
        await announce_change(db)


async def add_rule(db: RegistryDatabase, item: dict[str, Any], *, held: int) -> dict[str, Any]:
    """Store a new rule; 409 when its id is taken, 400 when `held` (the rules the caller
    knows of: the process's loaded set, not a count of a table that may hold many) is full."""
    if held >= MAX_RULES:
        raise BadRequest(f"the policy holds {MAX_RULES} rules already; remove some first")
    try:
        await db.put(POLICY_PK, item["id"], item, if_absent=True, expires=_ttl(item))
    except Conflict:
        raise ConflictError(f"a policy rule with id {item['id']} exists") from None
    await announce_change(db)
    return item


async def remove_rule(db: RegistryDatabase, rule_id: str, *, announce: bool = True) -> dict[str, Any]:
    """Delete one rule (and, unless told not to, tell every instance); NotFoundError when there is none."""
    try:
        item = await db.get(POLICY_PK, rule_id)
        await db.delete(POLICY_PK, rule_id)
    except NotFound:
        raise NotFoundError(f"no policy rule {rule_id}") from None
    if announce:
        await announce_change(db)
    return item


async def announce_change(db: RegistryDatabase) -> None:
    await db.put(STAMP_PK, STAMP_SK, {"stamp": secrets.token_hex(8), "changed": now_iso()})


async def current_stamp(db: RegistryDatabase) -> str:
    try:
        return str((await db.get(STAMP_PK, STAMP_SK)).get("stamp", ""))
    except NotFound:
        return ""


def describe(item: dict[str, Any]) -> str:
    """`lodash@>=4.17.21 (compromised release) until ...`: a rule's target, range, reason and end."""
    text = str(item.get("package") or item.get("scope") or "?")
    if item.get("versions"):
        text += f"@{item['versions']}"
    if item.get("reason"):
        text += f" ({item['reason']})"
    if item.get("expires"):
        text += f" until {item['expires']}"
    return text
