"""Settings: environment ``LUNAMAIL_*`` over an optional TOML file over defaults.

Pure data (stdlib only) so every layer may read it.  ``Settings.load()`` is
the one place that looks at the environment; everything else gets a
``Settings`` injected.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import tomllib
from collections.abc import Iterable
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


DEFAULT_DATA_DIR = Path("./lunamail-data")


def _s(default: Any, help: str) -> Any:
    """A setting: its default and the one line the README's table shows."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    """Every setting, typed, with its default and a one-line description.  The environment
    variable of ``name`` is ``LUNAMAIL_NAME``; the TOML key is ``name``."""

    data_dir: Path = _s(DEFAULT_DATA_DIR, "SQLite files, queue, blobs, keys")
    base_url: str = _s("http://127.0.0.1:8000", "public URL of `lunamail serve` (tracking, unsubscribe, web view links)")
    smtp_url: str = _s("smtp://127.0.0.1:25", "`smtp://`, `smtp+starttls://` or `smtps://`, optional `user:pass@`, "
                       "`?verify=false` for self-signed relays, on `smtp://` `?tls=opportunistic` (default: "
                       "STARTTLS whenever offered), `required` or `off`; `ses://?region=eu-west-1` sends through "
                       "Amazon SES")
    platform: str = _s("local", "`local` (one machine: the backends below) or `aws` (Lambda: DynamoDB, SQS, S3, "
                       "SES; `s3_bucket` and `master_key_secret` required)")
    # backends
    store: str = _s("sqlite", "item store: `sqlite`, `dynamodb` or `memory`")
    queue: str = _s("local", "queue: `local` (SQLite in the data folder) or `sqs`")
    blobs: str = _s("files", "blob store: `files` (in the data folder) or `s3`")
    dynamodb_table: str = _s("lunamail", "DynamoDB table of the `dynamodb` store")
    aws_endpoint_url: str | None = _s(None, "AWS endpoint override (a local stand-in); unset: AWS itself")
    aws_region: str = _s("us-east-1", "AWS region")
    s3_bucket: str = _s("", "S3 bucket of the `s3` blob store (required on AWS)")
    sqs_prefix: str = _s("lunamail-", "name prefix of the SQS queues")
    mailer: str = _s("smtp", "`smtp` or `ses`")
    ses_configuration_set: str = _s("", "SES configuration set that sends delivery, bounce, open and click events")
    master_key_secret: str = _s("", "Secrets Manager id of the master key (required on AWS)")
    lambda_queue: str = _s("", "the logical queue one Lambda function consumes (set by the template)")
    event_bus: str = _s("", "EventBridge bus that domain events are put on (AWS; set by the template)")
    # sending
    send_rate: float = _s(0.0, "messages per second across all workers on the data folder; 0 = unlimited")
    send_window: str = _s("", "an extra cap `N/seconds`, e.g. `50000/3600` (50,000 per hour)")
    smtp_connections: int = _s(4, "concurrent SMTP connections per worker process (reused, pipelined)")
    smtp_timeout: float = _s(30.0, "seconds an SMTP reply may take")
    smtp_helo: str = _s("", "the name this sender gives in EHLO (default: the host of `base_url`)")
    batch_size: int = _s(500, "recipients per send batch")
    page_size: int = _s(2000, "recipients per audience page (one planning handler run)")
    defer_base_delay: float = _s(60.0, "seconds before the first retry of a 4xx-deferred recipient; doubles per attempt")
    test_copies_per_hour: int = _s(200, "test copies an account may send per hour (a test is not a campaign: "
                                   "no suppression list, no unsubscribe; this caps its misuse)")
    defer_max_attempts: int = _s(5, "a recipient deferred this many times has failed")
    bounce_domain: str = _s("", "domain of the VERP return path (default: the From domain)")
    feedback_sender_id: str = _s("lunamail", "last field of the `Feedback-ID` header (campaign:list:account:sender)")
    dkim: tuple[DkimKey, ...] = _s((), "`domain:selector:keyfile[:rsa-sha256|ed25519-sha256]`, comma-separated; a domain's key "
                                      "also signs its subdomains; without a key mail goes out unsigned (the send warns)")
    unsigned_sending: bool = _s(False, "allow campaigns From a domain that is not a sending domain of the account "
                                "(`lunamail domains add`): such mail goes out unsigned and the send warns; off: refused")
    spf_include: str = _s("", "the SPF mechanism sending domains publish for the relay, e.g. `include:_spf.relay.example` "
                          "(default: `include:amazonses.com` with SES, else the SMTP relay's address)")
    inbound_mx: str = _s("", "host that receives bounces for `bounce_domain`: `domains add` then asks for its MX record")
    dns_servers: tuple[str, ...] = _s((), "name servers `domains check` asks (`address[:port]`, comma-separated); "
                                      "none: the system's")
    dns_timeout: float = _s(5.0, "seconds a `domains check` lookup may take")
    # runtime
    workers: int = _s(2, "concurrent handlers per worker process (more only fight over the GIL)")
    visibility_timeout: float = _s(120.0, "seconds a received message stays hidden before it is redelivered")
    max_attempts: int = _s(5, "attempts before a message goes to the dead letters")
    retry_base_delay: float = _s(1.0, "seconds before a failed message's first retry; doubles per attempt")
    retry_max_delay: float = _s(300.0, "longest delay between retries, in seconds")
    router: str = _s("", "`module:attr` of a routing table to run instead of the built-in one (tests, plugins)")
    import_chunk_rows: int = _s(50_000, "CSV rows per import handler run")
    # feedback and tracking
    soft_bounce_limit: int = _s(3, "soft bounces (spread over the spread, within the window) that suppress an "
                                "address (per-account override)")
    soft_bounce_window_days: float = _s(30.0, "soft bounces older than this are forgotten, in days")
    soft_bounce_spread_days: float = _s(7.0, "the soft bounces that suppress an address must span this many days "
                                        "(at most one counts per day)")
    tracking_link_max_age_days: float = _s(0.0, "refuse open and click links older than this; 0 = never")
    track_opens: bool = _s(True, "open tracking for campaigns that do not choose (per campaign: `--no-track-opens`)")
    track_clicks: bool = _s(True, "click tracking for campaigns that do not choose (per campaign: `--no-track-clicks`)")
    bot_click_window_seconds: float = _s(10.0, "clicks this soon after delivery on every link count as a scanner's")
    sns_topic_arns: tuple[str, ...] = _s((), "SNS topics (ARNs or `fnmatch` patterns, comma-separated) whose "
                                         "SES notifications are accepted; none: all refused")
    sns_max_age_seconds: float = _s(0.0, "refuse SNS messages older than this; 0 = no limit")
    sns_hosts_pattern: str = _s(r"^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$",
                                "regular expression of the hosts SNS certificates and confirmations come from")
    # the HTTP edge of `lunamail serve`
    edge_head_timeout: float = _s(10.0, "seconds a client may take to send request headers")
    edge_body_timeout: float = _s(60.0, "seconds a client may take to send a request body")
    edge_max_head_bytes: int = _s(32 * 1024, "largest request head, in bytes")
    edge_max_body_bytes: int = _s(1 << 20, "largest request body but uploads, in bytes")
    max_upload_bytes: int = _s(1 << 30, "largest upload (CSV imports), in bytes")
    edge_max_connections: int = _s(1000, "open connections at once; more are refused with 503")
    cors_origins: tuple[str, ...] = _s((), "origins browsers may call the API from (comma-separated, `*` = any); "
                                       "none: CORS off")
    # console single sign-on (OpenID Connect)
    oidc_issuer: str = _s("", "issuer URL of an OpenID Connect provider for console sign-in (its "
                          "`/.well-known/openid-configuration` is read); unset: no single sign-on")
    oidc_client_id: str = _s("", "this console's client id at the provider (redirect URI: `base_url` + "
                             "`/login/sso/callback`)")
    oidc_client_secret: str = _s("", "the client's secret (sent with HTTP Basic to the token endpoint)")
    oidc_provision_role: str = _s("", "role given to a verified address that has no user yet, at its first "
                                  "single sign-on; unset: such addresses are refused")
    oidc_provision_domains: tuple[str, ...] = _s((), "the address domains `oidc_provision_role` applies to "
                                                 "(comma-separated); none: any domain")
    oidc_account: str = _s("default", "the account that users made by single sign-on belong to")

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
        environment < explicit overrides.  An unknown ``LUNAMAIL_*`` variable or TOML key
        is a ConfigError naming it, with the nearest known name."""
        env = dict(os.environ if env is None else env)
        values: dict[str, Any] = {}
        names = {f.name: f for f in dataclasses.fields(cls)}
        data_dir = Path(overrides.get("data_dir") or env.get("LUNAMAIL_DATA_DIR") or DEFAULT_DATA_DIR)
        cfg_path = Path(env["LUNAMAIL_CONFIG"]) if env.get("LUNAMAIL_CONFIG") else data_dir / "lunamail.toml"
        if cfg_path.is_file():
            try:
                doc = tomllib.loads(cfg_path.read_text("utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{cfg_path}: {e}") from e
            older = doc.pop("extra", {})  # files written before every setting had a field
            for key, value in [*doc.items(), *(older.items() if isinstance(older, dict) else ())]:
                if key not in names:
                    raise ConfigError(f"{cfg_path}: unknown setting {key!r}{_hint(key, names)}")
                values[key] = value
        for key in env:
            if key.startswith(ENV_PREFIX) and key not in OTHER_VARIABLES:
                name = key[len(ENV_PREFIX):].lower()
                if name not in names:
                    close = _closest(name, names)
                    hint = f"; did you mean {ENV_PREFIX + close.upper()}?" if close else ""
                    raise ConfigError(f"unknown environment variable {key}{hint}")
                values[name] = env[key]
        for key, value in overrides.items():
            if key not in names:
                raise ConfigError(f"unknown setting {key!r}{_hint(key, names)}")
            if value is not None:
                values[key] = value
        values["data_dir"] = data_dir
        return cls(**{k: _coerce(k, names[k].type, v) for k, v in values.items()})


ENV_PREFIX = "LUNAMAIL_"

#: ``LUNAMAIL_*`` variables that are not settings (so they are not "unknown").
OTHER_VARIABLES: dict[str, str] = {
    "LUNAMAIL_CONFIG": "the TOML settings file (default: <data dir>/lunamail.toml)",
    "LUNAMAIL_ACCOUNT": "the account CLI commands act for (default: default)",
    "LUNAMAIL_ROUTER": "the worker's --router option",
    "LUNAMAIL_SUPERVISOR_PID": "set by `lunamail serve` for the worker processes it starts",
    "LUNAMAIL_HOSTILE_SHEET": "the test suite's figure sheet of the hostile-input tests",
    "LUNAMAIL_CRASH_SEED": "the test suite's seed of the crash test",
}


def _closest(name: str, names: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return close[0] if close else None


def _hint(name: str, names: Iterable[str]) -> str:
    close = _closest(name, names)
    return f"; did you mean {close!r}?" if close else ""


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, meaning) of every setting, in definition order."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default
        shown = ("—" if default in ("", (), None) else
                 f"`./{default.as_posix()}`" if isinstance(default, Path) else f"`{default}`")  # fmt: skip
        rows.append((ENV_PREFIX + f.name.upper(), shown, str(f.metadata.get("help", ""))))
    return rows


def settings_table() -> str:
    """The README's settings table (a test checks the README has exactly this)."""
    lines = ["| setting | default | meaning |", "|---|---|---|"]
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines += [f"| `{env}` | {cell(default)} | {cell(meaning)} |" for env, default, meaning in describe()]
    return "\n".join(lines) + "\n"


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
        if t.startswith("tuple"):
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(x).strip() for x in items if str(x).strip())
        if t.startswith("bool"):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
                raise ValueError("use true or false")
            return text in ("1", "true", "yes", "on")
        if t.startswith("int"):
            return int(value)
        if t.startswith("float"):
            return float(value)
        if value in ("", None) and "None" in t:
            return None
        return value if not isinstance(value, str) else value.strip()
    except (TypeError, ValueError) as e:
        raise ConfigError(f"setting {name}: cannot use {value!r} ({e})") from e


if __name__ == "__main__":  # print the README's settings table
    print(settings_table(), end="")
