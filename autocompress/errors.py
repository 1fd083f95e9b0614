"""Errors the CLI maps to exit codes; everything else is an internal error."""


class UserInputError(Exception):
    """Bad input from the user: printed as one line (problem and fix), exit code 2."""
