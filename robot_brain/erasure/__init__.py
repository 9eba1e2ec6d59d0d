"""The right to erasure: an operator's recorded episodes removed, and what was made from them.

- ``purge``: ``robot-brain data purge``: the operator's episodes deleted, datasets made from them
  marked stale or rebuilt without them, copies outside the data root listed.
- ``retention``: ``robot-brain data purge --expired``: episodes past their enrolment's retention
  period erased with the same machinery, the datasets holding them marked stale or rebuilt.

Sits above :mod:`robot_brain.episodes` and :mod:`robot_brain.datasets`, which it rewrites, and
:mod:`robot_brain.consent`, whose registry it revokes.
"""
