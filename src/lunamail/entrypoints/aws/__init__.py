"""AWS Lambda entrypoints: thin wrappers that run the routed handlers on SQS events.

``lunamail.entrypoints.aws.sqs_handler`` is the handler of every queue's function
in ``deploy/template.yaml``.  The HTTP API is not wrapped for Lambda yet (it runs
as a container or server with the same adapters).
"""

from lunamail.entrypoints.aws.sqs import SqsApp, reset, sqs_handler

__all__ = ["SqsApp", "reset", "sqs_handler"]
