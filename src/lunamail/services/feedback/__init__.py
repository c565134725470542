"""Feedback: bounces, complaints, deliveries and auto-replies flowing back after a send.

The modules here are pure (no I/O): ``verp`` signs return paths, ``dsn``
classifies raw feedback mail, ``sns`` verifies SNS notifications and maps SES
events.  Handlers that store and emit events build on them.
"""
