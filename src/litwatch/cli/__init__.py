"""The ``litwatch`` command: a thin layer over the core, which never imports it."""

from litwatch.cli.app import main

__all__ = ["main"]
