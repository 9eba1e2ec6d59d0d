"""The one-command demo: a session over the node processes, its episode runner, and its report.

- ``session``: the cell started from a sim plan, N seeded episodes, the report written.
- ``runner``: one observer node that resets, watches and scores episodes.
- ``report``: the summary table, ``summary.json`` and the plots.

Imports ``bringup`` (the plan and the processes), ``ros`` (message conversions) and ``embodiment``.
"""
