"""mibe's version: a leaf module, so every wing can record it without importing the package's entry points."""

__version__ = "0.1.0"
