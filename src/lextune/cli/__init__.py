"""The `lextune` command: thin typer commands over importable functions."""
