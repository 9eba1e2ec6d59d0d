"""Any ONNX vision model with a contract: one camera image in, tensors or heatmaps out.

The contract's image input says the size, channel order and normalisation; the
:class:`~robot_brain.perception.preprocess.Preprocessor` writes straight into the runtime's
bound input buffer, so a frame goes from the message buffer to the model with one fused
OpenCV pass and no intermediate tensor.
"""

from __future__ import annotations

import numpy as np

from robot_brain.errors import ModelContractError
from robot_brain.inference.contract import ROLE_IMAGE, ModelContract
from robot_brain.inference.model import LoadedModel
from robot_brain.inference.runtime import InferenceRuntime, RuntimeOptions
from robot_brain.perception.preprocess import Preprocessor


class VisionModel:
    """Preprocessing + session for a contract with exactly one ``image`` input."""

    def __init__(self, model: LoadedModel, options: RuntimeOptions | None = None) -> None:
        contract: ModelContract = model.require_contract()
        images = contract.inputs_with_role(ROLE_IMAGE)
        if len(images) != 1 or len(contract.inputs) != 1:
            raise ModelContractError(
                f"vision model {model.source}: expected exactly one input, of role image, found "
                f"{[f'{s.name} ({s.role})' for s in contract.inputs]}"
            )
        self.input = images[0]
        assert self.input.image is not None  # ImageSpec is required for the image role by the parser
        self.preprocessor = Preprocessor(self.input.image)
        self.runtime = InferenceRuntime(model, options)
        self.contract = contract
        self.model_id = model.model_id

    def __call__(self, image: np.ndarray, encoding: str) -> dict[str, np.ndarray]:
        """Preprocess one frame into the bound input and run; outputs are reused buffers (copy to keep)."""
        buffer = self.runtime.input_buffer(self.input.name)
        tensor = self.preprocessor(image, encoding, out=buffer)
        return self.runtime.run(None if tensor is buffer else {self.input.name: tensor})
