"""Exceptions that LabelCast raises for problems a user can fix; each message says how."""


class LabelCastError(Exception):
    """Base class of every LabelCast error whose message is meant for the user."""


class CommandError(LabelCastError):
    """A command-line invocation cannot be carried out (bad file, bad option value)."""


class DataFormatError(LabelCastError, ValueError):
    """A labeled data file is not in a format LabelCast reads."""
