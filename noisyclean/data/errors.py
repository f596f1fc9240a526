"""The errors a data folder can raise.

They all derive from :class:`DataError` (itself a ``ValueError``), so a command-line front
end can catch one class and print the message, which always names the file or folder at
fault and says how to fix it.
"""

from __future__ import annotations


class DataError(ValueError):
    """Something is wrong with the user's data (not with the code)."""


class CorruptImageError(DataError):
    """An image or mask file cannot be read as an image."""

    def __init__(self, path: object, reason: str, *, hint: str | None = None):
        self.path = path
        self.reason = reason
        message = f"cannot read image {path}: {reason}"
        if hint:
            message += f". {hint}"
        super().__init__(message)


class EmptyDatasetError(DataError):
    """A folder (or a JSON split) holds no usable image."""


class MaskMismatchError(DataError):
    """Masks and images do not pair up: a mask without an image, or sizes that differ."""


class LayoutError(DataError):
    """A folder does not follow the layout it was opened as (MVTec AD, Real-IAD, ...)."""
