"""Model contract and ONNX Runtime inference with execution-provider selection (ROS-free).

Imports ``errors`` only; a node that runs no model never imports it (ONNX Runtime is heavy).
"""
