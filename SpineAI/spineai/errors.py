"""The one exception type users see: a message that names the file and the problem."""


class SpineAIError(Exception):
    """Any failure the user can act on (bad input, missing model, failed device)."""


class InputError(SpineAIError):
    """An input file or array that SpineAI cannot use; the message names it and says why."""

    def __init__(self, source, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


class Cancelled(SpineAIError):
    """The user cancelled a running task; nothing was written."""

    def __init__(self):
        super().__init__("cancelled by the user")
