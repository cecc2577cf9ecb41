"""The `photoindex` command line (Typer + Rich)."""
