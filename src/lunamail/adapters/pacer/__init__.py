"""Pacer backends: in-process (``LocalPacer``), shared across processes on one machine
(``SqlitePacer``) and across machines and Lambda functions (``DynamoPacer``, imported from
its module so that local use never loads boto3)."""

from lunamail.adapters.pacer.local import LocalPacer
from lunamail.adapters.pacer.sqlite import SqlitePacer

__all__ = ["LocalPacer", "SqlitePacer"]
