"""Settings: environment ``LUNAMAIL_*`` over an optional TOML file over defaults.

Pure data (stdlib only) so every layer may read it.  ``Settings.load()`` is
the one place that looks at the environment; everything else gets a
``Settings`` injected.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names the setting."""


@dataclass(frozen=True)
class DkimKey:
    domain: str
    selector: str
    key_file: str
    algorithm: str = "rsa-sha256"  # or "ed25519-sha256"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("./lunamail-data")
    base_url: str = "http://127.0.0.1:8000"
    smtp_url: str = "smtp://127.0.0.1:25"
    # backends: "sqlite" | "dynamodb" ; "local" | "sqs" ; "files" | "s3"
    store: str = "sqlite"
    queue: str = "local"
    blobs: str = "files"
    dynamodb_table: str = "lunamail"
    aws_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    s3_bucket: str = ""
    sqs_prefix: str = "lunamail-"
    mailer: str = "smtp"  # "smtp" | "ses" (or LUNAMAIL_SMTP_URL=ses://?region=...)
    ses_configuration_set: str = ""
    master_key_secret: str = ""  # Secrets Manager id of the master key (AWS)
    lambda_queue: str = ""  # the queue one Lambda function consumes
    # sending
    send_rate: float = 0.0  # messages per second across all workers; 0 = unlimited
    send_window: str = ""  # optional "N/seconds", e.g. "50000/3600"
    smtp_connections: int = 4
    smtp_timeout: float = 30.0
    batch_size: int = 500  # recipients per delivery batch
    page_size: int = 2000  # recipients planned per fan-out handler run
    defer_base_delay: float = 60.0  # first retry of a 4xx-deferred recipient; doubles per attempt
    defer_max_attempts: int = 5  # deferred this many times = failed
    bounce_domain: str = ""  # VERP return-path domain; defaults to the From domain
    dkim: tuple[DkimKey, ...] = ()
    # runtime
    workers: int = 2  # handler threads per process; more only fight over the GIL (see docs/benchmarks.md)
    visibility_timeout: float = 120.0
    max_attempts: int = 5
    import_chunk_rows: int = 50_000
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def db_path(self) -> Path:
        return self.data_dir / "lunamail.db"

    @property
    def queue_path(self) -> Path:
        return self.data_dir / "queue.db"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"

    @property
    def master_key_path(self) -> Path:
        return self.data_dir / "master.key"

    @classmethod
    def load(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults < config file (``LUNAMAIL_CONFIG`` or ``<data_dir>/lunamail.toml``) <
        environment < explicit overrides."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        data_dir = Path(overrides.get("data_dir") or env.get("LUNAMAIL_DATA_DIR") or cls.data_dir)
        cfg_path = Path(env["LUNAMAIL_CONFIG"]) if env.get("LUNAMAIL_CONFIG") else data_dir / "lunamail.toml"
        if cfg_path.is_file():
            try:
                values.update(tomllib.loads(cfg_path.read_text("utf-8")))
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{cfg_path}: {e}") from e
        names = {f.name: f for f in dataclasses.fields(cls)}
        for name in names:
            key = "LUNAMAIL_" + name.upper()
            if key in env:
                values[name] = env[key]
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["data_dir"] = data_dir
        unknown = set(values) - set(names)
        if unknown:
            raise ConfigError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return cls(**{k: _coerce(k, names[k].type, v) for k, v in values.items()})


def _coerce(name: str, typ: Any, value: Any) -> Any:
    t = str(typ)
    try:
        if name == "data_dir":
            return Path(value)
        if name == "dkim":
            if isinstance(value, str):
                # "domain:selector:keyfile[:algorithm],..."
                out = []
                for spec in filter(None, (s.strip() for s in value.split(","))):
                    parts = spec.split(":")
                    out.append(DkimKey(*parts))
                return tuple(out)
            return tuple(DkimKey(**v) if isinstance(v, dict) else v for v in value)
        if t.startswith("int"):
            return int(value)
        if t.startswith("float"):
            return float(value)
        if name == "extra":
            return dict(value)
        if value in ("", None) and "None" in t:
            return None
        return value if not isinstance(value, str) else value.strip()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {name}: cannot use {value!r} ({e})") from e
