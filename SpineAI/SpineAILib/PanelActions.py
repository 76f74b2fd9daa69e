"""What the panel does with a click that fails: a message in the panel and the log, never only a traceback.

``runGuarded(action, onError)`` runs one click's work. An error the user can act on
(``SpineAIError``: bad input, missing packages, an engine message) goes to ``onError`` as it is;
a missing module becomes a ``DependencyError`` (so the panel offers the installation); anything
else (an OSError from a full disk, a RuntimeError from VTK, a bug) is logged with its traceback and
reaches ``onError`` as a SpineAIError that names it and says where the details are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from spineai.errors import SpineAIError

from .Dependencies import missingModuleError

LOG = logging.getLogger("SpineAI")


def asUserError(error: BaseException, action: str) -> SpineAIError:
    """``error`` as the SpineAIError the panel shows for ``action`` ('Segment cord', 'Export CSV', ...)."""
    if isinstance(error, SpineAIError):
        return error
    if isinstance(error, ImportError):
        return missingModuleError(error, action)
    return SpineAIError(
        f"{action} failed: {type(error).__name__}: {error or 'no details'} "
        "(the full report is in the Python console and Slicer's log)"
    )


def runGuarded(action: Callable[[], object], onError: Callable[[SpineAIError], None], name: str) -> bool:
    """Run ``action``; on any exception log it and pass the user's message to ``onError``. True if it ran through."""
    try:
        action()
    except Exception as error:  # every failure of a click ends in a message, whatever it is
        if not isinstance(error, SpineAIError):
            LOG.exception("%s failed", name)
        else:
            LOG.error("%s: %s", name, error)
        onError(asUserError(error, name))
        return False
    return True
