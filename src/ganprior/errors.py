"""Errors the user can act on. The CLI prints them as one line and exits non-zero."""


class GanpriorError(Exception):
    """Base class: the message is complete and meant for the user."""


class CheckpointError(GanpriorError):
    """A checkpoint is missing, unreadable, unsupported or unsafe."""


class ImageError(GanpriorError):
    """An input image is unreadable, too large or of an unsupported kind."""
