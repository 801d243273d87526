"""The generator as an MLflow pyfunc model, logged as code (no pickled objects).

Input: z, float32 (n, z_dim). Output: samples in [-1, 1], (n, C, H, W) for images or (n, D)
for toy points. Weights load with `weights_only=True`."""
from __future__ import annotations

import json

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from gan_core.config import from_dict
from gan_core.models import build_models


class GeneratorModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["config"]) as f:
            self.cfg = from_dict(json.load(f), check_paths=False)
        G, _ = build_models(self.cfg)
        G.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu",
                                     weights_only=True))
        self.G = G.eval()

    def predict(self, context, model_input, params=None):
        z = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if z.ndim != 2 or z.shape[1] != self.G.z_dim:
            raise ValueError(f"input must be (n, {self.G.z_dim}) latent vectors, got {tuple(z.shape)}")
        with torch.no_grad():
            return self.G(z).numpy()


mlflow.models.set_model(GeneratorModel())
