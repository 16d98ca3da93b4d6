"""Errors of the notifiers.

    DeliveryError(Exception)  raised when one attempt to deliver a notification to a sink fails
"""

from __future__ import annotations


class DeliveryError(Exception):
    """Raised when one attempt to deliver a notification to a sink fails.

    `permanent` means retrying the same payload soon will not help (HTTP 4xx, a missing
    program, a bad Apprise URL); the dispatcher then waits its longest backoff before the
    next round instead of retrying at once. Nothing is ever dropped.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)
