"""Commands and events: small immutable dataclasses with a stable name and version.

A message crosses process boundaries (the local queue, SQS, EventBridge), so
each class registers under a stable ``NAME`` and ``VERSION`` and serialises to
JSON.  Renaming a Python class never changes what is on the wire.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import orjson

M = TypeVar("M", bound="Message")

_REGISTRY: dict[str, type[Message]] = {}


class UnknownMessage(ValueError):
    """Raised when a payload names a message type this build does not know."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Message:
    """Base of every command and event.  Every message is scoped to an account."""

    NAME: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    KIND: ClassVar[str] = "message"

    account: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.NAME,
            "version": self.VERSION,
            "kind": self.KIND,
            "body": {f.name: getattr(self, f.name) for f in dataclasses.fields(self)},
        }

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())


@dataclasses.dataclass(frozen=True, kw_only=True)
class Command(Message):
    """Asks one handler to do something; it may be refused."""

    KIND: ClassVar[str] = "command"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Event(Message):
    """States a fact that happened; any number of handlers may react."""

    KIND: ClassVar[str] = "event"


@typing.dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(dataclasses.field,))
def message(name: str, version: int = 1) -> Callable[[type[M]], type[M]]:
    """Class decorator: freeze the class as a dataclass and register it under ``name``."""

    def wrap(cls: type[M]) -> type[M]:
        if name in _REGISTRY:
            raise ValueError(f"message name {name!r} registered twice")
        cls.NAME = name
        cls.VERSION = version
        dc = dataclasses.dataclass(frozen=True, kw_only=True)(cls)
        _REGISTRY[name] = dc
        return dc

    return wrap


def registry() -> dict[str, type[Message]]:
    """All registered message types by name (a copy)."""
    return dict(_REGISTRY)


def _tuple_fields(cls: type[Message]) -> frozenset[str]:
    cached: frozenset[str] | None = cls.__dict__.get("_tuple_fields_cache")
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls)
    found = frozenset(
        n for n, t in hints.items() if typing.get_origin(t) is tuple or t is tuple
    )
    cls._tuple_fields_cache = found  # type: ignore[attr-defined]
    return found


def from_dict(payload: dict[str, Any]) -> Message:
    """Rebuild a message from :meth:`Message.to_dict` output."""
    name = payload.get("name")
    cls = _REGISTRY.get(str(name))
    if cls is None:
        raise UnknownMessage(f"unknown message type {name!r}")
    body = dict(payload.get("body") or {})
    for key in _tuple_fields(cls):
        if isinstance(body.get(key), list):
            body[key] = tuple(body[key])
    known = _field_names(cls)
    if known.issuperset(body):  # the usual case: nothing to drop
        return cls(**body)
    return cls(**{k: v for k, v in body.items() if k in known})


def _field_names(cls: type[Message]) -> frozenset[str]:
    """The fields a message type takes (once per type: ``dataclasses.fields`` is slow
    and this runs for every message a worker decodes)."""
    cached: frozenset[str] | None = cls.__dict__.get("_field_names_cache")
    if cached is None:
        cached = frozenset(f.name for f in dataclasses.fields(cls))
        cls._field_names_cache = cached  # type: ignore[attr-defined]
    return cached


def from_json(raw: bytes | str) -> Message:
    """Rebuild a message from :meth:`Message.to_json` output."""
    return from_dict(orjson.loads(raw))


@dataclasses.dataclass(frozen=True)
class Later:
    """A handler's way to emit a message that becomes visible only after ``delay`` seconds
    (retries with backoff, scheduled sends).  The bus unwraps it."""

    message: Message
    delay: float
