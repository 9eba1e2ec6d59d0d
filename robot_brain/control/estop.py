"""The software e-stop's latch: who engaged it, and the rule that releases it.

A real cell's e-stop chain works like this: every pressed button must be released before the
cell may move again, and the reset is an explicit act by someone who says who they are. The
latch follows the same rules:

- any source may engage it, and engaging is never refused (a stop must always be possible);
- a source releases only its own stop; the arm may move again once no source holds one;
- an *operator reset* releases every source's stop at once. It must name the operator, and
  that name goes into the answer, the log and diagnostics.

Sources are strings the callers declare themselves, such as a teleop node's name or
``operator:<pseudonym>``. On a DDS domain anyone can claim any name. So the rule prevents
accidents, such as a second pad releasing the first pad's stop, or a script resetting a stop
that a person engaged. It does not stop malice: SROS2 access control is the tool for that.
A source is published and logged, so it must never be a person's name.
"""

from __future__ import annotations

from dataclasses import dataclass

#: The source of a stop engaged or released without a name (``std_srvs/Trigger`` ``~/estop`` / ``~/reset``).
UNNAMED = "unnamed"
#: Longest source accepted: a name, not a message.
MAX_SOURCE_LENGTH = 128


@dataclass(frozen=True)
class EStopAnswer:
    """What an engage or release did.

    ``success`` is whether the call achieved what it asked for: the stop is engaged, or the arm
    is free to move. ``engaged_by`` lists the sources that still hold a stop afterwards.
    ``released`` is true when this call freed the arm.
    """

    success: bool
    message: str
    engaged_by: tuple[str, ...]
    released: bool = False


def source_problem(source: str) -> str:
    """Why ``source`` cannot name a caller ('' when it can): a printable name of bounded length."""
    if len(source) > MAX_SOURCE_LENGTH:
        return f"a source of at most {MAX_SOURCE_LENGTH} characters, got {len(source)}"
    if not source.isprintable():
        return "a printable source name"
    return ""


class EStopLatch:
    """The sources that hold the e-stop, in the order they engaged it (not thread-safe: callers lock)."""

    def __init__(self) -> None:
        self._holders: dict[str, None] = {}

    @property
    def engaged(self) -> bool:
        return bool(self._holders)

    @property
    def holders(self) -> tuple[str, ...]:
        return tuple(self._holders)

    def engage(self, source: str) -> EStopAnswer:
        """Engage for ``source``; a blank one counts as :data:`UNNAMED`, a bad one is truncated, never refused."""
        source = source.strip() or UNNAMED
        if source_problem(source):
            source = "".join(c if c.isprintable() else "?" for c in source)[:MAX_SOURCE_LENGTH]
        self._holders[source] = None
        return EStopAnswer(True, f"e-stop engaged by {source}: decelerating to rest", self.holders)

    def release(self, source: str, *, operator_reset: bool = False) -> EStopAnswer:
        """Release ``source``'s stop, or every stop for an operator reset that names who does it."""
        source = source.strip()
        holders = self.holders
        if not holders:
            return EStopAnswer(True, "was not stopped", ())
        problem = source_problem(source)
        if problem:
            return EStopAnswer(False, f"release refused: expected {problem}", holders)
        if operator_reset:
            if not source or source == UNNAMED:
                return EStopAnswer(
                    False, "operator reset refused: expected the operator's name in source (who resets)", holders)
            self._holders.clear()
            return EStopAnswer(True, f"operator reset by {source}: released the stops of {', '.join(holders)}",
                               (), released=True)
        source = source or UNNAMED
        if source not in self._holders:
            return EStopAnswer(
                False,
                f"e-stop held by {', '.join(holders)}, not by {source}: only a source that engaged it releases its "
                "own stop, or an operator reset (operator_reset: true) that names who resets",
                holders,
            )
        del self._holders[source]
        if self._holders:
            return EStopAnswer(
                False, f"{source}'s stop released; still held by {', '.join(self._holders)}", self.holders)
        return EStopAnswer(True, f"e-stop released by {source}", (), released=True)
