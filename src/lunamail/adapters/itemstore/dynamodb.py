"""DynamoItemStore: the ItemStore on one DynamoDB table (pk/sk string keys).

DynamoDB deletes expired items lazily (up to days later), so reads filter
them and conditions treat an item whose ``ttl`` has passed as absent, the
same rule the local stores apply.  Queries return full pages with a cursor
only when more items exist, like the local stores.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Context, Decimal
from typing import Any

import boto3
from boto3.dynamodb.types import Binary, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from lunamail.ports.clock import Clock, SystemClock
from lunamail.ports.itemstore import (
    MAX_BATCH_WRITE,
    Condition,
    ConditionFailed,
    Delete,
    Item,
    ItemStoreError,
    LimitExceeded,
    Page,
    Put,
    TransactionCancelled,
    Update,
    ValidationError,
    WriteOp,
)

from . import _limits
from ._logic import bounds, decode_cursor, encode_cursor, is_expired, ttl_of

_GET_BATCH = 100
_RETRIES = 12
_NOOP_ATTR = "lunamail_noop"  # REMOVE of an attribute nobody sets: an update that changes nothing
_DECIMALS = Context(prec=38)
_PLACEHOLDER = re.compile(r"[#:][A-Za-z0-9_]+")


def create_table(client: Any, table: str) -> None:
    """Create the single table: string pk/sk, on-demand billing, TTL on ``ttl``."""
    client.create_table(
        TableName=table,
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    client.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 1})
    client.update_time_to_live(
        TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"}
    )


# ---------------------------------------------------------------- values

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_dynamo(value: Any) -> Any:
    """Floats become Decimals (boto3 refuses floats); everything else as TypeSerializer maps it."""
    if isinstance(value, float):
        return _DECIMALS.create_decimal(repr(value))
    if isinstance(value, dict):
        return {k: _to_dynamo(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_dynamo(v) for v in value]
    if isinstance(value, bytearray):
        return bytes(value)
    return value


def _from_dynamo(value: Any) -> Any:
    """Decimals with a fraction come back as float, others as int; Binary as bytes."""
    if isinstance(value, Decimal):
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent >= 0:
            return int(value)
        return float(value)
    if isinstance(value, Binary):
        return bytes(value.value)
    if isinstance(value, dict):
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    return value


def serialize(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items()}


def deserialize(raw: Mapping[str, Any]) -> Item:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in raw.items()}


# ---------------------------------------------------------------- expressions


class _Expr:
    """Collects placeholder names and values for one request's expressions."""

    def __init__(self, now: int) -> None:
        self.names: dict[str, str] = {"#pk": "pk", "#ttl": "ttl"}
        self.values: dict[str, Any] = {":now": {"N": str(now)}}
        self._n = 0

    def name(self, attr: str) -> str:
        self._n += 1
        key = f"#a{self._n}"
        self.names[key] = attr
        return key

    def value(self, val: Any) -> str:
        self._n += 1
        key = f":v{self._n}"
        self.values[key] = _serializer.serialize(_to_dynamo(val))
        return key

    # An item counts as present only while its ttl has not passed.
    ALIVE = "(attribute_exists(#pk) AND (attribute_not_exists(#ttl) OR NOT (#ttl < :now)))"
    ABSENT = "(attribute_not_exists(#pk) OR #ttl < :now)"
    NOT_EXPIRED = "(attribute_not_exists(#pk) OR attribute_not_exists(#ttl) OR NOT (#ttl < :now))"

    def condition(self, cond: Condition | None) -> str | None:
        if cond is None:
            return None
        parts: list[str] = []
        if cond.exists is True or cond.equals:
            parts.append(self.ALIVE)
        if cond.exists is False:
            parts.append(self.ABSENT)
        # attribute_type pins the type: True must not equal 1 (moto compares loosely).
        for attr, val in cond.equals.items():
            n, v, t = self.name(attr), self.value(val), self.type_of(val)
            parts.append(f"(attribute_type({n}, {t}) AND {n} = {v})")
        for attr, val in cond.not_equals.items():
            n, v, t = self.name(attr), self.value(val), self.type_of(val)
            parts.append(
                f"(attribute_not_exists({n}) OR NOT attribute_type({n}, {t}) OR {n} <> {v}"
                " OR #ttl < :now)"
            )
        return " AND ".join(parts) if parts else None

    def type_of(self, val: Any) -> str:
        code = next(iter(_serializer.serialize(_to_dynamo(val))))
        key = f":t{code}"
        self.values[key] = {"S": code}
        return key

    def update(self, add: Mapping[str, Any], set: Mapping[str, Any], remove: Sequence[str]) -> str:
        clauses = []
        if set:
            clauses.append(
                "SET " + ", ".join(f"{self.name(a)} = {self.value(v)}" for a, v in set.items())
            )
        if add:
            clauses.append(
                "ADD " + ", ".join(f"{self.name(a)} {self.value(v)}" for a, v in add.items())
            )
        if remove:
            clauses.append("REMOVE " + ", ".join(self.name(a) for a in remove))
        if not clauses:
            clauses.append(f"REMOVE {self.name(_NOOP_ATTR)}")
        return " ".join(clauses)

    def params(self, expression: str | None, extra: str = "") -> dict[str, Any]:
        """Only the placeholders an expression uses (DynamoDB refuses unused ones)."""
        used = set(_PLACEHOLDER.findall((expression or "") + " " + extra))
        out: dict[str, Any] = {}
        names = {k: v for k, v in self.names.items() if k in used}
        values = {k: v for k, v in self.values.items() if k in used}
        if names:
            out["ExpressionAttributeNames"] = names
        if values:
            out["ExpressionAttributeValues"] = values
        return out


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _translate(exc: ClientError) -> ItemStoreError:
    code, message = _code(exc), str(exc.response.get("Error", {}).get("Message", exc))
    if code == "ConditionalCheckFailedException":
        return ConditionFailed(message)
    if code == "ValidationException":
        lowered = message.lower()
        if "size" in lowered and ("exceed" in lowered or "maximum" in lowered):
            return LimitExceeded(message)
        return ValidationError(message)
    return ItemStoreError(f"{code}: {message}")


# ---------------------------------------------------------------- the store


class DynamoItemStore:
    """ItemStore on DynamoDB through the low-level boto3 client (thread-safe)."""

    def __init__(
        self,
        table: str,
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        client: Any = None,
        clock: Clock | None = None,
        parallelism: int = 16,
    ) -> None:
        self.table = table
        self._client = client or boto3.client(
            "dynamodb", endpoint_url=endpoint_url, region_name=region
        )
        self._clock = clock or SystemClock()
        self._parallelism = parallelism
        self._pool: ThreadPoolExecutor | None = None

    def _now(self) -> int:
        return int(self._clock.now())

    def _key(self, pk: str, sk: str) -> dict[str, Any]:
        return {"pk": {"S": pk}, "sk": {"S": sk}}

    def _live(self, raw: Mapping[str, Any] | None, now: int) -> Item | None:
        if not raw:
            return None
        item = deserialize(raw)
        return None if is_expired(item, now) else item

    def _backoff(self, attempt: int) -> None:
        if attempt >= _RETRIES:
            raise ItemStoreError("DynamoDB kept returning unprocessed work")
        self._clock.sleep(min(0.05 * 2**attempt, 2.0))

    # ------------------------------------------------------------ reads

    def get(self, pk: str, sk: str, *, consistent: bool = True) -> Item | None:
        _limits.check_key(pk, sk)
        try:
            out = self._client.get_item(
                TableName=self.table, Key=self._key(pk, sk), ConsistentRead=consistent
            )
        except ClientError as exc:
            raise _translate(exc) from exc
        return self._live(out.get("Item"), self._now())

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Item | None]:
        for pk, sk in keys:
            _limits.check_key(pk, sk)
        unique = list(dict.fromkeys(keys))
        found: dict[tuple[str, str], Item] = {}
        now = self._now()
        for start in range(0, len(unique), _GET_BATCH):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [self._key(pk, sk) for pk, sk in unique[start : start + _GET_BATCH]],
                    "ConsistentRead": True,
                }
            }
            attempt = 0
            while request:
                try:
                    out = self._client.batch_get_item(RequestItems=request)
                except ClientError as exc:
                    raise _translate(exc) from exc
                for raw in out.get("Responses", {}).get(self.table, []):
                    item = self._live(raw, now)
                    if item is not None:
                        found[(item["pk"], item["sk"])] = item
                request = out.get("UnprocessedKeys") or {}
                if request:
                    self._backoff(attempt)
                    attempt += 1
        return [found.get(key) for key in keys]

    def query(
        self,
        pk: str,
        *,
        prefix: str = "",
        start: str | None = None,
        end: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        reverse: bool = False,
    ) -> Page:
        _limits.check_query_limit(limit)
        if not isinstance(pk, str) or not pk:
            raise ValidationError("pk must be a non-empty string")
        rng = bounds(prefix, start, end)
        after = decode_cursor(cursor) if cursor is not None else None
        lo, hi = rng.lo, rng.hi
        if rng.below is not None and (hi is None or rng.below < hi):
            hi = rng.below  # inclusive here; the exact bound is filtered below
        if after is not None:
            if reverse:
                hi = after if hi is None or after < hi else hi
            else:
                lo = after if lo is None or after > lo else lo
        if lo is not None and hi is not None and lo > hi:
            return Page([], None)
        values: dict[str, Any] = {":pk": {"S": pk}}
        key_cond = "#pk = :pk"
        if lo is not None and hi is not None:
            key_cond += " AND #sk BETWEEN :lo AND :hi"
        elif lo is not None:
            key_cond += " AND #sk >= :lo"
        elif hi is not None:
            key_cond += " AND #sk <= :hi"
        if lo is not None:
            values[":lo"] = {"S": lo}
        if hi is not None:
            values[":hi"] = {"S": hi}
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": key_cond,
            "ExpressionAttributeNames": {"#pk": "pk", "#sk": "sk"}
            if "#sk" in key_cond
            else {"#pk": "pk"},
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not reverse,
            "ConsistentRead": True,
        }
        now = self._now()
        items: list[Item] = []
        while len(items) <= limit:
            request["Limit"] = limit + 1 - len(items)
            try:
                out = self._client.query(**request)
            except ClientError as exc:
                raise _translate(exc) from exc
            for raw in out.get("Items", []):
                item = self._live(raw, now)
                if item is None or item["sk"] == after or not rng.matches(item["sk"]):
                    continue
                items.append(item)
            last = out.get("LastEvaluatedKey")
            if not last:
                break
            request["ExclusiveStartKey"] = last
        more = len(items) > limit
        del items[limit:]
        return Page(items, encode_cursor(items[-1]["sk"]) if more else None)

    # ------------------------------------------------------------ writes

    def _put_request(self, item: Item, condition: Condition | None) -> dict[str, Any]:
        request: dict[str, Any] = {"TableName": self.table, "Item": serialize(item)}
        expr = _Expr(self._now())
        cond = expr.condition(condition)
        if cond:
            request["ConditionExpression"] = cond
            request.update(expr.params(cond))
        return request

    def put(self, item: Item, *, condition: Condition | None = None) -> None:
        _limits.check_item(item)
        try:
            self._client.put_item(**self._put_request(item, condition))
        except ClientError as exc:
            raise _translate(exc) from exc

    def _update_request(
        self,
        pk: str,
        sk: str,
        add: Mapping[str, Any],
        set: Mapping[str, Any],
        remove: Sequence[str],
        condition: Condition | None,
    ) -> dict[str, Any]:
        expr = _Expr(self._now())
        update = expr.update(add, set, remove)
        cond = expr.condition(condition)
        # An expired item must not lend its old attributes to the update: refuse it and
        # let the caller clear it first.
        cond = f"{cond} AND {expr.NOT_EXPIRED}" if cond else expr.NOT_EXPIRED
        return {
            "TableName": self.table,
            "Key": self._key(pk, sk),
            "UpdateExpression": update,
            "ConditionExpression": cond,
            **expr.params(update, cond),
        }

    def _clear_if_expired(self, pk: str, sk: str) -> bool:
        """Delete the item if it is expired but not yet reaped; True if it was."""
        out = self._client.get_item(
            TableName=self.table, Key=self._key(pk, sk), ConsistentRead=True
        )
        raw = out.get("Item")
        if not raw:
            return False
        item = deserialize(raw)
        if not is_expired(item, self._now()):
            return False
        try:
            self._client.delete_item(
                TableName=self.table,
                Key=self._key(pk, sk),
                ConditionExpression="#ttl = :old",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={":old": {"N": str(ttl_of(item))}},
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise _translate(exc) from exc
        return True

    def update(
        self,
        pk: str,
        sk: str,
        *,
        add: Mapping[str, int | float] | None = None,
        set: Mapping[str, Any] | None = None,
        remove: Sequence[str] = (),
        condition: Condition | None = None,
    ) -> Item:
        add, set = add or {}, set or {}
        _limits.check_key(pk, sk)
        _limits.check_update(add, set, remove)
        for _ in range(3):
            request = self._update_request(pk, sk, add, set, remove, condition)
            try:
                out = self._client.update_item(ReturnValues="ALL_NEW", **request)
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException" and self._clear_if_expired(
                    pk, sk
                ):
                    continue
                raise _translate(exc) from exc
            return deserialize(out["Attributes"])
        raise ConditionFailed(f"condition failed for {pk!r}/{sk!r}")

    def delete(self, pk: str, sk: str, *, condition: Condition | None = None) -> None:
        _limits.check_key(pk, sk)
        request: dict[str, Any] = {"TableName": self.table, "Key": self._key(pk, sk)}
        expr = _Expr(self._now())
        cond = expr.condition(condition)
        if cond:
            request["ConditionExpression"] = cond
            request.update(expr.params(cond))
        try:
            self._client.delete_item(**request)
        except ClientError as exc:
            raise _translate(exc) from exc

    def _batch(self, requests: list[dict[str, Any]]) -> None:
        pending: dict[str, Any] = {self.table: requests}
        attempt = 0
        while pending:
            try:
                out = self._client.batch_write_item(RequestItems=pending)
            except ClientError as exc:
                raise _translate(exc) from exc
            pending = out.get("UnprocessedItems") or {}
            if pending:
                self._backoff(attempt)
                attempt += 1

    def batch_write(
        self, puts: Sequence[Item] = (), deletes: Sequence[tuple[str, str]] = ()
    ) -> None:
        _limits.check_batch(puts, deletes)
        requests = [{"PutRequest": {"Item": serialize(item)}} for item in puts]
        requests += [{"DeleteRequest": {"Key": self._key(pk, sk)}} for pk, sk in deletes]
        if requests:
            self._batch(requests)

    def _executor(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._parallelism, thread_name_prefix="dynamo-put")
        return self._pool

    def put_many(self, items: Sequence[Item], *, condition: Condition | None = None) -> list[bool]:
        keys = [_limits.check_item(item) for item in items]
        if condition is None:
            last = {key: item for key, item in zip(keys, items, strict=True)}
            batches = [
                [{"PutRequest": {"Item": serialize(item)}} for item in chunk]
                for chunk in _chunks(list(last.values()), MAX_BATCH_WRITE)
            ]
            list(self._executor().map(self._batch, batches))
            return [True] * len(items)
        result = [False] * len(items)
        for round_ in _rounds(keys):  # later duplicates wait for the earlier ones

            def attempt(i: int) -> bool:
                try:
                    self._client.put_item(**self._put_request(items[i], condition))
                except ClientError as exc:
                    if _code(exc) == "ConditionalCheckFailedException":
                        return False
                    raise _translate(exc) from exc
                return True

            for i, ok in zip(round_, self._executor().map(attempt, round_), strict=True):
                result[i] = ok
        return result

    def transact(self, ops: Sequence[WriteOp]) -> None:
        _limits.check_transaction(ops)
        if not ops:
            return
        for _ in range(3):
            request = [self._transact_item(op) for op in ops]
            try:
                self._client.transact_write_items(TransactItems=request)
                return
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise _translate(exc) from exc
                reasons = [
                    "" if r.get("Code") in (None, "None") else str(r.get("Code"))
                    for r in exc.response.get("CancellationReasons", [])
                ]
                if "ValidationError" in reasons:
                    raise ValidationError(str(exc)) from exc
                cleared = [
                    isinstance(op, Update)
                    and reason == "ConditionalCheckFailed"
                    and self._clear_if_expired(op.pk, op.sk)
                    for op, reason in zip(ops, reasons, strict=False)
                ]
                if any(cleared):
                    continue
                raise TransactionCancelled(reasons or ["Unknown"] * len(ops)) from exc
        raise TransactionCancelled(["ConditionalCheckFailed"] * len(ops))

    def _transact_item(self, op: WriteOp) -> dict[str, Any]:
        if isinstance(op, Put):
            return {"Put": self._put_request(op.item, op.condition)}
        if isinstance(op, Update):
            return {
                "Update": self._update_request(
                    op.pk, op.sk, op.add, op.set, op.remove, op.condition
                )
            }
        expr = _Expr(self._now())
        cond = expr.condition(op.condition)
        body: dict[str, Any] = {"TableName": self.table, "Key": self._key(op.pk, op.sk)}
        if cond:
            body["ConditionExpression"] = cond
            body.update(expr.params(cond))
        if isinstance(op, Delete):
            return {"Delete": body}
        if not cond:  # a Check without a real condition: always true
            body["ConditionExpression"] = "attribute_exists(#pk) OR attribute_not_exists(#pk)"
            body["ExpressionAttributeNames"] = {"#pk": "pk"}
        return {"ConditionCheck": body}

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def _chunks(seq: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


def _rounds(keys: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Indexes grouped so no round holds one key twice, in first-come order per key."""
    rounds: list[list[int]] = []
    seen: dict[tuple[str, str], int] = {}
    for i, key in enumerate(keys):
        n = seen.get(key, -1) + 1
        seen[key] = n
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(i)
    return rounds
