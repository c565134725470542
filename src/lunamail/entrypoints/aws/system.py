"""Settings -> the system a Lambda function runs: DynamoDB, S3, SQS, SES, Secrets Manager.

The AWS-only settings (bucket, queue prefix, master-key secret, SES
configuration set, this function's queue) are read from ``Settings`` when it
has the field and from ``LUNAMAIL_*`` environment variables otherwise, so this
works before and after those fields join ``config.Settings``.

The master key must be the same in every container (tokens signed by one are
checked by another), so on AWS it comes from Secrets Manager, never from a
file in the container's ``/tmp``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from typing import Any

import boto3

from lunamail.adapters.blobs.s3 import S3Blobs
from lunamail.adapters.events.eventbridge import EventBridgePublisher
from lunamail.adapters.mailer.ses import SesMailer
from lunamail.adapters.queue.sqs import SqsQueue
from lunamail.config import ConfigError, Settings
from lunamail.ports.secrets import DerivedSecrets, Secrets
from lunamail.runtime.bootstrap import LazyMailer, System, bootstrap, build_pacer, retry_policy

log = logging.getLogger("lunamail.entrypoints.aws")

DEFAULT_PREFIX = "lunamail-"


def _setting(settings: Settings, field: str, default: str = "") -> str:
    value = getattr(settings, field, None)
    if value in (None, ""):
        value = os.environ.get(f"LUNAMAIL_{field.upper()}", default)
    return str(value).strip()


def sqs_prefix(settings: Settings) -> str:
    return _setting(settings, "sqs_prefix", DEFAULT_PREFIX)


def lambda_queue(settings: Settings) -> str:
    """The logical queue this function consumes (``LUNAMAIL_LAMBDA_QUEUE``; not
    ``LUNAMAIL_QUEUE``, which is the Settings field choosing the queue backend)."""
    return _setting(settings, "lambda_queue")


def master_secrets(settings: Settings, client: Any = None) -> Secrets | None:
    """Per-account keys from the master key in Secrets Manager (``LUNAMAIL_MASTER_KEY_SECRET``,
    an ARN or name); None when unset (the bootstrap then uses the data-folder key)."""
    secret_id = _setting(settings, "master_key_secret")
    if not secret_id:
        return None
    client = client or boto3.client(
        "secretsmanager", endpoint_url=settings.aws_endpoint_url, region_name=settings.aws_region
    )
    value = client.get_secret_value(SecretId=secret_id)
    raw = value.get("SecretBinary") or str(value.get("SecretString", "")).encode()
    if len(raw) < 32:
        raise ConfigError(f"master key secret {secret_id!r} is shorter than 32 bytes")
    return DerivedSecrets(bytes(raw))


def build_system(settings: Settings | None = None) -> System:
    """The system with the AWS adapters.  Queues come from the template, so a missing
    one is an error rather than created on the fly."""
    settings = settings or Settings.load()
    bucket = _setting(settings, "s3_bucket")
    if not bucket:
        raise ConfigError("setting s3_bucket (LUNAMAIL_S3_BUCKET) is required on AWS")
    endpoint, region = settings.aws_endpoint_url, settings.aws_region
    secrets = master_secrets(settings)
    if secrets is None:
        log.warning("no LUNAMAIL_MASTER_KEY_SECRET: each container makes its own master key")
    configuration_set = _setting(settings, "ses_configuration_set") or None
    event_bus = _setting(settings, "event_bus")
    settings = replace(settings, store="dynamodb")
    return bootstrap(
        settings,
        blobs=S3Blobs(bucket, endpoint_url=endpoint, region=region),
        queue=SqsQueue(
            prefix=sqs_prefix(settings),
            endpoint_url=endpoint,
            region=region,
            retry=retry_policy(settings),
            create_queues=False,
        ),
        secrets=secrets,
        mailer=LazyMailer(
            lambda: SesMailer(
                endpoint_url=endpoint, region=region, configuration_set=configuration_set,
                pacer=build_pacer(settings),  # one schedule for every sender function
            )
        ),
        # Domain events go to the EventBridge bus (``LUNAMAIL_EVENT_BUS``), whose rules
        # carry them to each consumer's queue; commands go to the queues directly.
        events=EventBridgePublisher(event_bus, endpoint_url=endpoint, region=region)
        if event_bus else None,
    )
