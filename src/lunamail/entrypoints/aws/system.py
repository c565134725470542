"""Settings -> the system a Lambda function runs: the one bootstrap, on the ``aws`` platform.

:func:`lunamail.runtime.bootstrap.bootstrap` chooses the AWS adapters (DynamoDB, SQS
with the template's queues, S3, SES, the DynamoDB send pacer) and refuses to start
without the bucket or the master-key secret, naming the setting.  The master key must
be the same in every container (tokens signed by one are checked by another), so on
AWS it comes from Secrets Manager, never from a file in the container's ``/tmp``.
"""

from __future__ import annotations

from dataclasses import replace

from lunamail.config import Settings
from lunamail.runtime.bootstrap import System, bootstrap


def sqs_prefix(settings: Settings) -> str:
    return settings.sqs_prefix


def lambda_queue(settings: Settings) -> str:
    """The logical queue this function consumes (``LUNAMAIL_LAMBDA_QUEUE``; not
    ``LUNAMAIL_QUEUE``, which chooses the queue backend)."""
    return settings.lambda_queue.strip()


def build_system(settings: Settings | None = None) -> System:
    """The system with the AWS adapters, from the one bootstrap."""
    return bootstrap(replace(settings or Settings.load(), platform="aws"))
