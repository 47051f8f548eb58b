"""Errors that the command line reports as one line with exit code 2."""


class CommandError(Exception):
    """A usage or fatal error with a message meant for the user."""
