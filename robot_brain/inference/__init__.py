"""Model contract and ONNX Runtime inference with execution-provider selection (ROS-free)."""
