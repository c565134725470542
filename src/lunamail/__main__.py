"""``python -m lunamail``: the CLI for callers that have the interpreter but not the
``lunamail`` script on PATH (``lunamail serve`` starts its worker processes this way)."""

from lunamail.entrypoints.cli.main import main

if __name__ == "__main__":
    main()
