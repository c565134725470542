"""Bootstrap: Settings -> the wired system (store, blobs, queue, secrets, mailer, bus, deps).

The one place that chooses adapters.  Adapter modules are imported inside
the builder functions, so choosing SQLite never imports boto3 and the
runtime imports even when an optional backend is missing.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets as _secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lunamail.config import ConfigError, Settings
from lunamail.domain.accounts import valid_role
from lunamail.ports.blobs import Blobs
from lunamail.ports.clock import Clock, SystemClock
from lunamail.ports.deps import Deps
from lunamail.ports.dns import Resolver
from lunamail.ports.events import EventPublisher
from lunamail.ports.identity import IdentityProvider
from lunamail.ports.itemstore import ItemStore
from lunamail.ports.mailer import Mailer, OutgoingMail, SendResult, StopCheck
from lunamail.ports.pacer import Pacer
from lunamail.ports.queue import Queue, RetryPolicy
from lunamail.ports.secrets import DerivedSecrets, Secrets
from lunamail.runtime.bus import Bus
from lunamail.runtime.routing import Router, default_router, load_router
from lunamail.runtime.worker import Runtime

log = logging.getLogger("lunamail.runtime.bootstrap")

MASTER_KEY_BYTES = 32
SYSTEM_ACCOUNT = "*"  # the "account" of keys that belong to the installation, not a tenant


class LazyMailer:
    """A Mailer that builds the real one on first use: most commands never send mail,
    and opening SMTP connections (or failing to) should not slow or break them."""

    def __init__(self, factory: Callable[[], Mailer]) -> None:
        self._factory = factory
        self._mailer: Mailer | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._mailer is not None

    def get(self) -> Mailer:
        with self._lock:
            if self._mailer is None:
                self._mailer = self._factory()
            return self._mailer

    def send(
        self,
        mails: Iterable[OutgoingMail],
        on_result: Callable[[SendResult], None],
        stop: StopCheck | None = None,
    ) -> None:
        self.get().send(mails, on_result, stop)

    def close(self) -> None:
        with self._lock:
            mailer, self._mailer = self._mailer, None
        if mailer is not None:
            mailer.close()


@dataclass
class System:
    """Everything a process needs, wired once.  Close it (or use ``with``) on exit."""

    settings: Settings
    store: ItemStore
    blobs: Blobs
    queue: Queue
    secrets: Secrets
    clock: Clock
    mailer: Mailer
    router: Router
    bus: Bus
    deps: Deps
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def runtime(self, *, concurrency: int | None = None, **options: Any) -> Runtime:
        """A local runtime over this system's queue, router and deps."""
        return Runtime(
            self.queue,
            self.router,
            self.deps,
            bus=self.bus,
            concurrency=concurrency or self.settings.workers,
            visibility_timeout=self.settings.visibility_timeout,
            **options,
        )

    def run_until(
        self,
        predicate: Callable[[], bool],
        *,
        timeout: float | None = None,
        on_tick: Callable[[], None] | None = None,
    ) -> bool:
        """Drain in this process until ``predicate()`` holds (see Runtime.run_until)."""
        return self.runtime().run_until(predicate, timeout=timeout, on_tick=on_tick)

    def close(self) -> None:
        """Close mailer, queue, store and blobs; errors are logged, not raised, so one
        failing close does not leak the others."""
        closers, self._closers = self._closers, []
        for close in reversed(closers):
            try:
                close()
            except Exception:
                log.exception("error while closing")

    def __enter__(self) -> System:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def bootstrap(
    settings: Settings | None = None,
    *,
    store: ItemStore | None = None,
    blobs: Blobs | None = None,
    queue: Queue | None = None,
    secrets: Secrets | None = None,
    clock: Clock | None = None,
    mailer: Mailer | None = None,
    router: Router | None = None,
    retry: RetryPolicy | None = None,
    events: EventPublisher | None = None,
    resolver: Resolver | None = None,
) -> System:
    """Build the system from settings (``Settings.load()`` when None).  Keyword parts
    replace the configured ones (tests inject fakes; parts passed in are still closed
    by ``System.close``)."""
    settings = for_platform(settings or Settings.load())
    if settings.platform == "local":
        private_data_dir(settings)
    closers: list[Callable[[], None]] = []
    try:
        clock = clock or SystemClock()
        secrets = secrets or _build_secrets(settings)
        store = store or _build_store(settings)
        closers.append(store.close)
        blobs = blobs or _build_blobs(settings, secrets)
        blob_close = getattr(blobs, "close", None)
        if callable(blob_close):
            closers.append(blob_close)
        # The queue keeps real time even when a test injects a fake clock for the
        # handlers: retries and visibility timeouts must still expire.  Inject a queue
        # built over the fake clock to test scheduling.
        queue = queue or _build_queue(settings, retry or retry_policy(settings))
        closers.append(queue.close)
        mailer = mailer or LazyMailer(lambda: _build_mailer(settings))
        closers.append(mailer.close)
        router = router or _router_from(settings)
        events = events or _build_events(settings)
        if events is not None:
            closers.append(events.close)
        bus = Bus(queue, router, events)
        identity = _build_identity(settings)
        if identity is not None:
            closers.append(getattr(identity, "close", lambda: None))
        deps = Deps(
            settings=settings, store=store, blobs=blobs, clock=clock, secrets=secrets, mailer=mailer,
            identity=identity,
            resolver=resolver or _build_resolver(settings),
        )
    except BaseException:
        for close in reversed(closers):
            close()
        raise
    return System(settings, store, blobs, queue, secrets, clock, mailer, router, bus, deps, closers)


PLATFORMS = ("local", "aws")


def for_platform(settings: Settings) -> Settings:
    """The settings with the platform's backends.  ``aws`` means DynamoDB, SQS (queues come
    from the template), S3 and SES, with the master key in Secrets Manager; what it needs
    and lacks is a start-up error naming the setting."""
    if settings.platform not in PLATFORMS:
        raise ConfigError(f"setting platform: {settings.platform!r} is not one of {', '.join(PLATFORMS)}")
    if settings.platform == "local":
        return settings
    missing = [f"{name} (LUNAMAIL_{name.upper()})" for name in ("s3_bucket", "master_key_secret")
               if not str(getattr(settings, name)).strip()]
    if missing:
        raise ConfigError(f"setting {' and '.join(missing)} is required on AWS")
    return replace(settings, store="dynamodb", queue="sqs", blobs="s3", mailer="ses")


def _build_secrets(settings: Settings) -> Secrets:
    """Per-account keys from the master key: Secrets Manager when ``master_key_secret``
    names one (every container must derive the same keys), else the data-folder file."""
    if not settings.master_key_secret:
        return DerivedSecrets(load_master_key(settings.master_key_path))
    import boto3

    client = boto3.client("secretsmanager", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region)
    try:
        value = client.get_secret_value(SecretId=settings.master_key_secret)
    except Exception as e:
        raise ConfigError(f"setting master_key_secret: cannot read {settings.master_key_secret!r}: {e}") from e
    raw = value.get("SecretBinary") or str(value.get("SecretString", "")).encode()
    if len(raw) < MASTER_KEY_BYTES:
        raise ConfigError(f"master key secret {settings.master_key_secret!r} is shorter than {MASTER_KEY_BYTES} bytes")
    return DerivedSecrets(bytes(raw))


def bootstrap_in(data_dir: str | os.PathLike[str], **parts: Any) -> System:
    """For tests: a system over ``data_dir`` with default settings (the environment is
    not read, so a developer's LUNAMAIL_* variables cannot leak in).  ``parts`` are the
    keyword overrides of :func:`bootstrap`; ``settings_overrides`` a dict of Settings fields."""
    fields = dict(parts.pop("settings_overrides", None) or {})
    settings = Settings(data_dir=Path(data_dir), **fields)
    return bootstrap(settings, **parts)


def open_queue(settings: Settings | None = None) -> Queue:
    """Just the configured queue, for commands that only inspect or move messages (dead
    letters, depth): no store, blobs or key material is opened."""
    settings = settings or Settings.load()
    private_data_dir(settings)
    return _build_queue(settings, retry_policy(settings))


#: The SQLite files of a data folder (each may have -wal and -shm companions).
_DB_FILES = ("lunamail.db", "queue.db", "pace.db")


def private_data_dir(settings: Settings) -> None:
    """The data folder readable by its owner only: the folder 0700, its databases 0600.

    The databases are created empty (a valid SQLite file) with mode 0600 before SQLite
    opens them, so no umask makes them world-readable; SQLite gives its -wal and -shm
    files the database's mode.  Files of an older folder are tightened."""
    path = settings.data_dir
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):  # a folder owned by someone else stays as it is
        if path.stat().st_mode & 0o077:
            path.chmod(0o700)
    used = {"lunamail.db": settings.store == "sqlite", "queue.db": settings.queue == "local",
            "pace.db": settings.store != "dynamodb" and bool(settings.send_rate > 0 or settings.send_window)}
    for name in _DB_FILES:
        db = path / name
        if used[name]:
            with contextlib.suppress(FileExistsError):
                os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        for f in (db, db.with_name(name + "-wal"), db.with_name(name + "-shm")):
            with contextlib.suppress(OSError):
                if f.stat().st_mode & 0o077:
                    f.chmod(0o600)


def retry_policy(settings: Settings) -> RetryPolicy:
    """The queue's retries: ``max_attempts``, ``retry_base_delay``, ``retry_max_delay``."""
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay=settings.retry_base_delay,
        max_delay=settings.retry_max_delay,
    )


def load_master_key(path: Path) -> bytes:
    """Read the installation's master key, creating it (0600) on first use.

    Created by writing a private temp file and hard-linking it into place, so two
    processes starting at once agree on one key and nobody reads a half-written file.
    """
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{_secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(os.urandom(MASTER_KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race
                os.link(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        key = path.read_bytes()
    if len(key) < MASTER_KEY_BYTES:
        raise ConfigError(f"master key {path} is shorter than {MASTER_KEY_BYTES} bytes")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        log.warning("master key %s is readable by other users; chmod 600 it", path)
    return key


# ---------------------------------------------------------------- builders


def _build_store(settings: Settings) -> ItemStore:
    if settings.store == "sqlite":
        from lunamail.adapters.itemstore.sqlite import SqliteItemStore

        sqlite_store: ItemStore = SqliteItemStore(settings.db_path)
        return sqlite_store
    if settings.store == "dynamodb":
        from lunamail.adapters.itemstore.dynamodb import DynamoItemStore

        dynamo_store: ItemStore = DynamoItemStore(
            settings.dynamodb_table,
            endpoint_url=settings.aws_endpoint_url,
            region=settings.aws_region,
        )
        return dynamo_store
    if settings.store == "memory":
        from lunamail.adapters.itemstore.memory import MemoryItemStore

        memory_store: ItemStore = MemoryItemStore()
        return memory_store
    raise ConfigError(f"setting store: {settings.store!r} is not one of sqlite, dynamodb, memory")


def _build_blobs(settings: Settings, secrets: Secrets) -> Blobs:
    if settings.blobs == "files":
        from lunamail.adapters.blobs.files import FileBlobs

        files: Blobs = FileBlobs(
            settings.blobs_dir,
            base_url=settings.base_url,
            signing_key=secrets.key(SYSTEM_ACCOUNT, "blob-upload"),
        )
        return files
    if settings.blobs == "s3":
        from lunamail.adapters.blobs.s3 import S3Blobs

        s3: Blobs = S3Blobs(settings.s3_bucket, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region)
        return s3
    raise ConfigError(f"setting blobs: {settings.blobs!r} is not supported (use files or s3)")


def _build_queue(settings: Settings, retry: RetryPolicy) -> Queue:
    if settings.queue == "local":
        from lunamail.adapters.queue.sqlite import SqliteQueue

        return SqliteQueue(settings.queue_path, retry=retry)
    if settings.queue == "sqs":
        from lunamail.adapters.queue.sqs import SqsQueue

        sqs: Queue = SqsQueue(prefix=settings.sqs_prefix, endpoint_url=settings.aws_endpoint_url,
                              region=settings.aws_region, retry=retry,
                              create_queues=settings.platform != "aws")  # AWS: the template's
        return sqs
    raise ConfigError(f"setting queue: {settings.queue!r} is not supported (use local or sqs)")


def _build_events(settings: Settings) -> EventPublisher | None:
    """Domain events on the EventBridge bus (``event_bus``), whose rules carry them to each
    consumer's queue; without a bus the queues get them directly."""
    if not settings.event_bus:
        return None
    from lunamail.adapters.events.eventbridge import EventBridgePublisher

    publisher: EventPublisher = EventBridgePublisher(
        settings.event_bus, endpoint_url=settings.aws_endpoint_url, region=settings.aws_region
    )
    return publisher


def _build_identity(settings: Settings) -> IdentityProvider | None:
    """The OpenID Connect client of console single sign-on, when an issuer is set (its
    metadata is read at the first sign-in, so a provider that is down stops no start)."""
    if not settings.oidc_issuer:
        return None
    if not settings.oidc_client_id:
        raise ConfigError("setting oidc_client_id: needed with oidc_issuer (LUNAMAIL_OIDC_CLIENT_ID)")
    role = settings.oidc_provision_role
    if role and (role == "owner" or not valid_role(role)):
        raise ConfigError(f"setting oidc_provision_role: {role!r} is not admin, sender, editor or viewer")
    from lunamail.adapters.identity.oidc import OidcClient

    client: IdentityProvider = OidcClient(settings.oidc_issuer, settings.oidc_client_id,
                                          settings.oidc_client_secret)
    return client


def _build_resolver(settings: Settings) -> Resolver:
    """DNS for ``domains check``: the ``dns_servers`` named, else the system's (asked only
    when a check runs)."""
    from lunamail.adapters.dns.dnspython import DnspythonResolver

    return DnspythonResolver(settings.dns_servers, timeout=settings.dns_timeout)


def _build_mailer(settings: Settings) -> Mailer:
    if settings.mailer == "ses" or settings.smtp_url.startswith("ses://"):
        from lunamail.adapters.mailer.ses import SesMailer

        opts: dict[str, Any] = {
            "region": settings.aws_region, "endpoint_url": settings.aws_endpoint_url,
            "configuration_set": settings.ses_configuration_set or None, "pacer": build_pacer(settings),
        }
        ses: Mailer = (SesMailer.from_url(settings.smtp_url, **opts)
                       if settings.smtp_url.startswith("ses://") else SesMailer(**opts))
        return ses
    from lunamail.adapters.mailer.smtp import SmtpMailer

    mailer: Mailer = SmtpMailer.from_url(
        settings.smtp_url, connections=settings.smtp_connections, timeout=settings.smtp_timeout,
        pacer=build_pacer(settings), helo=settings.smtp_helo or helo_from_base_url(settings.base_url),
    )
    return mailer


def helo_from_base_url(base_url: str) -> str:
    """The EHLO name when none is set: the public host of ``lunamail serve`` (an address
    literal in brackets, as RFC 5321 wants), not the machine's own host name."""
    import ipaddress
    from urllib.parse import urlsplit

    host = (urlsplit(base_url).hostname or "").strip()
    if not host:
        return "localhost"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    return f"[IPv6:{ip}]" if ip.version == 6 else f"[{ip}]"


def build_pacer(settings: Settings) -> Pacer | None:
    """The send-rate limiter shared by every worker process on the data folder, or by every
    sender on the DynamoDB table (None when neither a rate nor a window is configured)."""
    from lunamail.adapters.pacer.sqlite import SqlitePacer
    from lunamail.lib.pacing import PaceConfig, parse_window

    count, seconds = parse_window(settings.send_window) if settings.send_window else (0, 0.0)
    if settings.send_rate <= 0 and not count:
        log.info("send pacing: none (no send_rate or send_window set)")
        return None
    config = PaceConfig(settings.send_rate, count, seconds)
    if settings.store == "dynamodb":  # many machines or Lambda functions: one shared item
        from lunamail.adapters.pacer.dynamodb import DynamoPacer

        log.info("send pacing: DynamoDB token bucket in table %s", settings.dynamodb_table)
        return DynamoPacer(settings.dynamodb_table, config, endpoint_url=settings.aws_endpoint_url,
                           region=settings.aws_region)
    log.info("send pacing: SQLite token bucket in %s", settings.data_dir / "pace.db")
    return SqlitePacer(settings.data_dir / "pace.db", config)


def _router_from(settings: Settings) -> Router:
    return load_router(settings.router) if settings.router else default_router()
