"""OpenMFA Server: an open, self-hosted multi-factor authentication server."""

from __future__ import annotations

from importlib import metadata

try:
    __version__ = metadata.version("openmfa")
except metadata.PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
