"""Shared pure helpers used by more than one service."""
