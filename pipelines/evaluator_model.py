"""The digit classifier (gan_core.models.evaluator) as an MLflow pyfunc model, logged as code (no
pickled objects).

Input: float32 images (n, 1, H, W) in [-1, 1], any H and W (resized to 28x28 by the model).
Output: class logits, float32 (n, 10). Weights load with `weights_only=True`; the JSON artifact
holds the constructor arguments and the metrics the model was trained to."""
from __future__ import annotations

import json

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from gan_core.models.evaluator import DigitClassifier

PREDICT_BATCH = 1024


class EvaluatorModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["config"]) as f:
            self.config = json.load(f)
        model = DigitClassifier(**self.config.get("init", {}))
        model.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu",
                                         weights_only=True))
        self.model = model.eval()

    def predict(self, context, model_input, params=None):
        x = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"input must be (n, 1, H, W) images in [-1, 1], got {tuple(x.shape)}")
        with torch.no_grad():
            out = [self.model(x[i:i + PREDICT_BATCH]) for i in range(0, len(x), PREDICT_BATCH)]
        return torch.cat(out).numpy() if out else np.zeros((0, DigitClassifier.num_classes), np.float32)


mlflow.models.set_model(EvaluatorModel())
