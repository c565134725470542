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

#: Old wire name -> current name.  Renaming a message is a migration: its old name goes
#: here, so messages already on a queue (or in a dead-letter queue) still decode.  The
#: frozen-surface test fails on a rename without an entry.
RENAMED: dict[str, str] = {}


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


@dataclasses.dataclass(frozen=True)
class _Decoder:
    """How to rebuild one message type, worked out once per type (``dataclasses.fields``
    and type hints are slow, and this runs for every message a worker decodes)."""

    cls: type[Message]
    known: frozenset[str]
    tuples: frozenset[str]
    required: frozenset[str]
    defaults: dict[str, Any]
    direct: bool  # may be built without calling ``__init__`` (see :func:`from_dict`)

    @staticmethod
    def of(cls: type[Message]) -> _Decoder:
        cached: _Decoder | None = cls.__dict__.get("_decoder_cache")
        if cached is not None:
            return cached
        fields = dataclasses.fields(cls)
        hints = typing.get_type_hints(cls)
        defaults = {f.name: f.default for f in fields if f.default is not dataclasses.MISSING}
        direct = (
            all(f.default_factory is dataclasses.MISSING and f.init for f in fields)
            and not hasattr(cls, "__post_init__")
            and not hasattr(cls, "__slots__")
            and getattr(cls.__init__, "__qualname__", "") == f"{cls.__qualname__}.__init__"
            and cls.__init__.__module__ == cls.__module__
        )
        decoder = _Decoder(
            cls,
            frozenset(f.name for f in fields),
            frozenset(n for n, t in hints.items() if typing.get_origin(t) is tuple or t is tuple),
            frozenset(f.name for f in fields if f.name not in defaults),
            defaults,
            direct,
        )
        setattr(cls, "_decoder_cache", decoder)  # noqa: B010  (not a declared attribute)
        return decoder


def from_dict(payload: dict[str, Any]) -> Message:
    """Rebuild a message from :meth:`Message.to_dict` output.

    Unknown body fields are dropped (a newer producer may add fields), JSON lists become
    tuples where the field is a tuple.  A plain frozen dataclass whose body names every
    required field is built by filling its ``__dict__`` (defaults, then the body): the same
    object its generated ``__init__`` makes, at a quarter of the cost."""
    name = payload.get("name")
    key = name if type(name) is str else str(name)
    cls = _REGISTRY.get(key) or _REGISTRY.get(RENAMED.get(key, ""))
    if cls is None:
        raise UnknownMessage(f"unknown message type {name!r}")
    d = _Decoder.of(cls)
    body: dict[str, Any] = payload.get("body") or {}
    if d.tuples:
        body = dict(body)
        for key in d.tuples:
            if isinstance(body.get(key), list):
                body[key] = tuple(body[key])
    if not d.known.issuperset(body):  # a newer producer's extra fields
        body = {k: v for k, v in body.items() if k in d.known}
    if d.direct and d.required.issubset(body):
        msg = object.__new__(cls)
        attrs = msg.__dict__
        attrs.update(d.defaults)
        attrs.update(body)
        return msg
    return cls(**body)


def from_json(raw: bytes | str) -> Message:
    """Rebuild a message from :meth:`Message.to_json` output."""
    return from_dict(orjson.loads(raw))


@dataclasses.dataclass(frozen=True)
class Later:
    """A handler's way to emit a message that becomes visible only after ``delay`` seconds
    (retries with backoff, scheduled sends).  The bus unwraps it."""

    message: Message
    delay: float
