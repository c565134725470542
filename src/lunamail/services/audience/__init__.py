"""Audience service: lists, subscribers, suppression, CSV imports, recipient selection."""
