"""The one error coordinators see."""


class HandoffError(Exception):
    """Something a coordinator asked for that can't be done; the message says why."""
