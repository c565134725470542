"""Lunamail: event-driven, serverless-native email marketing."""

__version__ = "0.1.0"
