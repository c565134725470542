"""AWS Lambda entrypoints: thin wrappers over the routed handlers and the ASGI app.

``lunamail.entrypoints.aws.sqs_handler`` is the handler of every queue's function
in ``deploy/template.yaml``; ``lunamail.entrypoints.aws.http.http_handler`` is the
HTTP API's function (imported from its own module so that the queue functions never
load FastAPI).
"""

from lunamail.entrypoints.aws.sqs import SqsApp, reset, sqs_handler

__all__ = ["SqsApp", "reset", "sqs_handler"]
