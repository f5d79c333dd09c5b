"""The error type that commands raise for problems the user can fix."""


class CommandError(Exception):
    """A problem with the command's input, reported as one line with exit status 2."""
