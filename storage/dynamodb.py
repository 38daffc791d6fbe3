"""RegistryDatabase in one DynamoDB table through aiobotocore.

Items are (pk S, sk S, ver N, data S, expires N?): `data` is the item dict as
JSON, `expires` doubles as the table's TTL attribute. DynamoDB deletes expired
items lazily (within days), so every read checks `expires` itself and every
condition treats an expired item as absent. Each write is one UpdateItem whose
condition expression carries the compare-and-swap.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import orjson

from .aws import (
    CLIENT_KEYS,
    CONFIG_SECTION,
    AwsClient,
    AwsOptions,
    client_error_code,
    opt_str,
    translate,
)
from .base import Conflict, NotFound, RegistryDatabase, StorageError

LOG = logging.getLogger(__name__)

# Its own keys, and the client tuning (retries, timeouts) it shares with S3.
DYNAMO_KEYS: frozenset[str] = frozenset({"dynamoTableName", "dynamoEndpoint", "dynamoRegion"}) | CLIENT_KEYS
DEFAULT_TABLE = "tarhold"
CONDITION_FAILED = "ConditionalCheckFailedException"

NAMES = {"#pk": "pk", "#v": "ver", "#d": "data", "#e": "expires"}  # DATA is a reserved word
LIVE = "(attribute_not_exists(#e) OR #e > :now)"
# An unconditional put retries this often when an expired item keeps being
# replaced under it (see put); beyond that something is badly wrong.
UNCONDITIONAL_ATTEMPTS = 5
BATCH_GET_KEYS = 100  # DynamoDB's limit for one BatchGetItem
BATCH_GET_ATTEMPTS = 8


def _num(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _live(raw: Mapping[str, Any], now: float) -> bool:
    expires = raw.get("expires")
    return expires is None or float(expires["N"]) > now


def _decode(raw: Mapping[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = orjson.loads(raw["data"]["S"])
    item["ver"] = int(raw["ver"]["N"])
    return item


def _encode(item: Mapping[str, Any]) -> str:
    return orjson.dumps({k: v for k, v in item.items() if k != "ver"}).decode()


class DynamoRegistryDatabase(AwsClient, RegistryDatabase):
    """Items of the registry database in one table keyed by (pk, sk).

    The keyword arguments are those of AwsOptions (region, endpoint,
    access_key_id, secret_access_key, session_token, proxy, tuning).
    """

    service = "dynamodb"
    page_size: int | None = None  # Limit of each Query page; None lets DynamoDB decide

    def __init__(self, table: str = DEFAULT_TABLE, **aws: Any) -> None:
        if not table:
            raise ValueError("table must not be empty")
        super().__init__(AwsOptions(**aws))
        self.table = table

    @property
    def region(self) -> str | None:
        """The configured region (None when the default chain decides)."""
        return self.aws.region

    @classmethod
    def from_config(
        cls, section: Mapping[str, Any], where: str = CONFIG_SECTION
    ) -> DynamoRegistryDatabase:
        """Build from the `store: aws-s3-storage:` section; ignores keys it does not read.

        `dynamoRegion` falls back to `region`; `dynamoEndpoint` does not fall
        back to `endpoint`, which is the S3 endpoint.
        """
        aws = AwsOptions.from_section(section, where)
        aws = dataclasses.replace(
            aws,
            region=opt_str(section, "dynamoRegion", where) or aws.region,
            endpoint=opt_str(section, "dynamoEndpoint", where),
        )
        table = opt_str(section, "dynamoTableName", where) or DEFAULT_TABLE
        return cls(table, **vars(aws))

    def describe(self) -> Mapping[str, str]:
        info = {"type": "dynamodb", "table": self.table}
        if self.aws.endpoint:
            info["endpoint"] = self.aws.endpoint
        return info

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    # -- items --------------------------------------------------------------

    async def get(self, pk: str, sk: str) -> dict[str, Any]:
        with translate(f"dynamodb GetItem {pk}/{sk}"):
            response = await self.client.get_item(
                TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True
            )
        raw = response.get("Item")
        if raw is None or not _live(raw, time.time()):
            raise NotFound(f"no item {pk}/{sk}")
        return _decode(raw)

    async def get_many(self, pk: str, sks: Sequence[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        keys = [self._key(pk, sk) for sk in dict.fromkeys(sks)]
        for start in range(0, len(keys), BATCH_GET_KEYS):
            pending = keys[start:start + BATCH_GET_KEYS]
            for attempt in range(BATCH_GET_ATTEMPTS):
                with translate(f"dynamodb BatchGetItem {pk}"):
                    response = await self.client.batch_get_item(
                        RequestItems={self.table: {"Keys": pending, "ConsistentRead": True}}
                    )
                now = time.time()
                for raw in response.get("Responses", {}).get(self.table, ()):
                    if _live(raw, now):
                        found[raw["sk"]["S"]] = _decode(raw)
                pending = response.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
                if not pending:
                    break
                await asyncio.sleep(min(0.05 * 2**attempt, 1.0))  # throttled: back off, ask for the rest
            else:
                raise StorageError(f"dynamodb BatchGetItem {pk}: {len(pending)} keys left unprocessed")
        return found

    async def put(
        self,
        pk: str,
        sk: str,
        item: Mapping[str, Any],
        *,
        if_absent: bool = False,
        if_ver: int | None = None,
        expires: int | None = None,
    ) -> int:
        if if_absent and if_ver is not None:
            raise ValueError("put takes at most one of if_absent, if_ver")
        data = _encode(item)
        if if_absent:
            return await self._update(
                pk, sk, data, expires, "#v = :one", "attribute_not_exists(#pk) OR #e <= :now"
            )
        if if_ver is not None:
            return await self._update(
                pk, sk, data, expires, "#v = :next", f"#v = :ver AND {LIVE}", ver=if_ver
            )
        # Unconditional: a live (or absent) item gets ver + 1; an expired one
        # counts as absent and restarts at 1, as in every backend. One
        # expression cannot choose between the two, so try each in turn.
        for _ in range(UNCONDITIONAL_ATTEMPTS):
            try:
                return await self._update(
                    pk, sk, data, expires, "#v = if_not_exists(#v, :zero) + :one", LIVE
                )
            except Conflict:
                pass
            try:
                return await self._update(pk, sk, data, expires, "#v = :one", "#e <= :now")
            except Conflict:
                pass
        raise StorageError(f"dynamodb put {pk}/{sk}: item keeps changing between expired and live")

    async def _update(
        self,
        pk: str,
        sk: str,
        data: str,
        expires: int | None,
        set_ver: str,
        condition: str,
        ver: int | None = None,
    ) -> int:
        """One UpdateItem: SET data and ver, SET or REMOVE expires, under condition."""
        values: dict[str, Any] = {":d": {"S": data}, ":now": _num(int(time.time()))}
        for name, number in ((":zero", 0), (":one", 1)):
            if name in set_ver:
                values[name] = _num(number)
        if ver is not None:
            values[":ver"], values[":next"] = _num(ver), _num(ver + 1)
        update = f"SET #d = :d, {set_ver}"
        if expires is not None:
            update += ", #e = :exp"
            values[":exp"] = _num(expires)
        else:
            update += " REMOVE #e"
        names = {k: v for k, v in NAMES.items() if k in update or k in condition}
        with translate(f"dynamodb UpdateItem {pk}/{sk}"):
            try:
                response = await self.client.update_item(
                    TableName=self.table,
                    Key=self._key(pk, sk),
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValues="UPDATED_NEW",
                )
            except Exception as exc:
                if client_error_code(exc) == CONDITION_FAILED:
                    raise Conflict(f"item {pk}/{sk} changed since it was read") from None
                raise
        # UPDATED_NEW may leave out a value that did not change (moto does,
        # e.g. an expired ver 1 rewritten as ver 1); that value is :one then.
        new = response.get("Attributes", {}).get("ver") or values.get(":next") or values[":one"]
        return int(new["N"])

    async def delete(self, pk: str, sk: str, *, if_ver: int | None = None) -> None:
        condition = f"attribute_exists(#pk) AND {LIVE}"
        names = {"#pk": "pk", "#e": "expires"}
        values: dict[str, Any] = {":now": _num(int(time.time()))}
        if if_ver is not None:
            condition += " AND #v = :ver"
            names["#v"] = "ver"
            values[":ver"] = _num(if_ver)
        with translate(f"dynamodb DeleteItem {pk}/{sk}"):
            try:
                await self.client.delete_item(
                    TableName=self.table,
                    Key=self._key(pk, sk),
                    ConditionExpression=condition,
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except Exception as exc:
                if client_error_code(exc) != CONDITION_FAILED:
                    raise
                old = exc.response.get("Item")  # type: ignore[attr-defined]
                if old is None:
                    # Absent, or an endpoint that does not return the old
                    # item: ask (an absent item is NotFound either way).
                    await self.get(pk, sk)
                elif not _live(old, time.time()):
                    raise NotFound(f"no item {pk}/{sk}") from None
                raise Conflict(f"item {pk}/{sk} changed since it was read") from None

    async def query(
        self, pk: str, sk_prefix: str = ""
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        condition = "#pk = :pk"
        names = {"#pk": "pk"}
        values: dict[str, Any] = {":pk": {"S": pk}}
        if sk_prefix:
            condition += " AND begins_with(#sk, :prefix)"
            names["#sk"] = "sk"
            values[":prefix"] = {"S": sk_prefix}
        args: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ConsistentRead": True,
        }
        if self.page_size:
            args["Limit"] = self.page_size
        while True:
            with translate(f"dynamodb Query {pk}"):
                response = await self.client.query(**args)
            now = time.time()
            for raw in response.get("Items", ()):
                if _live(raw, now):
                    yield raw["sk"]["S"], _decode(raw)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            args["ExclusiveStartKey"] = last

    async def check_health(self) -> None:
        try:
            response = await self.client.describe_table(TableName=self.table)
        except StorageError:
            raise
        except Exception as exc:
            reason = client_error_code(exc) or type(exc).__name__
            raise StorageError(f"dynamodb table {self.table} is not reachable: {reason}") from exc
        status = response["Table"].get("TableStatus")
        if status not in ("ACTIVE", "UPDATING"):
            raise StorageError(f"dynamodb table {self.table} is {status}")


__all__ = ["DEFAULT_TABLE", "DYNAMO_KEYS", "DynamoRegistryDatabase"]
