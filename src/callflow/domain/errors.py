"""Domain errors: each says in plain words what was wrong with the input."""


class CallflowError(Exception):
    """Base of every error callflow raises on purpose."""


class InvalidPhoneNumber(CallflowError):
    """The text given as a phone number is not one."""


class InvalidEvent(CallflowError):
    """A call event lacks a required value or carries one that cannot go into a key."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
