"""The application layer: one function per use case, shared by every door.

The CLI, the REST API (and later the console, GraphQL and Lambda handlers) call
only these functions.  Each takes an :class:`~lunamail.app.base.Env` (the wired
dependencies and the way to publish), the :class:`~lunamail.app.base.Actor`
acting (account and role) and typed inputs, and returns a typed result.  A use
case that changes something returns its messages with its result; the
decorator in :mod:`.base` publishes them once the call has succeeded, so the
same call emits the same messages whoever calls it.
"""
