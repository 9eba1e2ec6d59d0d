"""Behaviour cloning: datasets in, an ONNX policy with its contract and provenance out.

- ``training``: ``robot-brain train`` end to end (consent screened, trained, exported, audited).
- ``training_data``: what a dataset gives training: consent screening at training time, chunk
  labels, statistics, images.
- ``policies``: the PyTorch modules (MLP head, visuomotor CNN).
- ``training_config`` / ``training_loop``: settings; the resumable loop, checkpoints, DDP.
- ``training_progress``: the progress line and the loss curve.
- ``onnx_export``: export checked against PyTorch and the policy runtime.
- ``fit_check``: the exported model run on its own demonstrations, against trivial baselines.
- ``model_provenance``: a model's provenance and its check against the consent registry.
- ``requirements``: the one-line error when torch is not installed.

The only package that imports torch, and only in ``policies``, ``training``, ``training_config``,
``training_loop`` and ``onnx_export``: ``model_provenance``, ``fit_check`` and ``training_data`` stay torch-free
for the CLI and the policy runtime. Imports :mod:`robot_brain.datasets` and the layers below it,
and :mod:`robot_brain.inference` (the contract a model carries).
"""
