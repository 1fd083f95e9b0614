"""Errors the CLI maps to exit codes; everything else is an internal error."""


class UserInputError(Exception):
    """Bad input from the user: printed as one line (problem and fix), exit code 2."""


class RunFailed(Exception):
    """The search could not go on (the teacher's baseline failed, trial after trial failed): one line with the reason
    and where to look, exit code 1. The outputs are written from the study as it stands before it is raised."""
