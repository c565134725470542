"""The web console: server-rendered pages (Jinja2 + htmx) served by the same ASGI app as
the API.  Pages sign in with a session cookie and call the same use cases as the CLI
and the API, so the roles hold here too."""
