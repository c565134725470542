"""Pacer backends: in-process (``LocalPacer``) and shared across processes (``SqlitePacer``)."""

from lunamail.adapters.pacer.local import LocalPacer
from lunamail.adapters.pacer.sqlite import SqlitePacer

__all__ = ["LocalPacer", "SqlitePacer"]
