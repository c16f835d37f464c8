"""The one error family the front doors catch and show as a single line."""

from __future__ import annotations


class RagError(Exception):
    """A failure the user can act on; its message names what, where and what to do."""
