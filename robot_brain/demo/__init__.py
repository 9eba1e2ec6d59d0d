"""The one-command demo: episode orchestration over the node processes, and its report."""
