"""evalmon's platform: stable abstractions with no product knowledge (see architecture.md section 1)."""

from importlib import metadata

try:
    __version__ = metadata.version("evalmon")
except metadata.PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
