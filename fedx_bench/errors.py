"""User-facing error types: anything raised as ``UserError`` is printed as one line and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (config, data, paths). The CLI prints it as one line and exits 2."""


class ConfigError(UserError):
    """An invalid suite or run configuration; the message names the file and the key."""


class DatasetNotFoundError(UserError):
    """A dataset is not on disk where we looked; the message says where and how to get it."""


class CorruptDataError(UserError):
    """A dataset file exists but cannot be read or fails its checksum."""


class PartitionError(UserError):
    """A partition request that cannot be satisfied (beta <= 0, too many clients, ...)."""
