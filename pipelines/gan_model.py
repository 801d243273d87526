"""The generator as an MLflow pyfunc model, logged as code (no pickled objects).

Input: z, float32 (n, z_dim; with InfoGAN's code, model.z_dim noise entries and then the
one-hot code; conditioned on data.clusters, z_dim + 1 normal entries, the last of which picks
the cluster by the clusters' shares); a class-conditional generator takes {"z": (n, z_dim) float32,
"label": (n,) int64}, a text-to-image one {"z": (n, z_dim) float32, "text": (n,) str}; a
super-resolution generator (srgan) takes low-res images (n, C, h, w) float32 in [-1, 1] of any
h, w. Output: samples in [-1, 1], (n, C, H, W) for images (SR: H, W = scale * h, w) or (n, D)
for toy points. Weights load with `weights_only=True`."""
from __future__ import annotations

import json

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel

from gan_core.config import from_dict
from gan_core.models import build_models
from gan_core.text import encode


class GeneratorModel(PythonModel):
    def load_context(self, context):
        with open(context.artifacts["config"]) as f:
            self.cfg = from_dict(json.load(f), check_paths=False)
        G, _ = build_models(self.cfg)
        G.load_state_dict(torch.load(context.artifacts["weights"], map_location="cpu",
                                     weights_only=True))
        self.G = G.eval()

    def predict(self, context, model_input, params=None):
        if self.cfg.model.family == "srgan":
            return _super_resolve(self.G, model_input)
        k = getattr(self.G, "num_classes", 0)
        if hasattr(self.G, "label_counts"):  # k-means clusters: the last normal entry picks one
            z = _latents(model_input, self.G.z_dim + 1)
            with torch.no_grad():
                return self.G(z[:, :-1], self.G.cluster_of(z[:, -1])).numpy()
        if self.cfg.model.text_max_len:
            if not isinstance(model_input, dict) or set(model_input) != {"z", "text"}:
                raise ValueError('a text-to-image generator takes {"z": (n, z_dim) float32, '
                                 '"text": (n,) str}')
            z = _latents(model_input["z"], self.G.z_dim)
            text = [str(t) for t in np.asarray(model_input["text"]).reshape(-1)]
            if len(text) != z.shape[0]:
                raise ValueError(f"text must hold {z.shape[0]} captions, got {len(text)}")
            with torch.no_grad():
                return self.G(z, torch.from_numpy(encode(text, self.cfg.model.text_max_len))).numpy()
        if k:
            if not isinstance(model_input, dict) or set(model_input) != {"z", "label"}:
                raise ValueError('a conditional generator takes {"z": (n, z_dim) float32, '
                                 '"label": (n,) int64}')
            z, y = _latents(model_input["z"], self.G.z_dim), np.asarray(model_input["label"]).reshape(-1)
            if y.shape[0] != z.shape[0] or not np.issubdtype(y.dtype, np.integer):
                raise ValueError(f"label must hold {z.shape[0]} integers, got {y.dtype} {y.shape}")
            if y.min() < 0 or y.max() >= k:
                raise ValueError(f"labels must lie in [0, {k}), got {y.min()}..{y.max()}")
            with torch.no_grad():
                return self.G(z, torch.as_tensor(y, dtype=torch.long)).numpy()
        with torch.no_grad():
            return self.G(_latents(model_input, self.G.z_dim)).numpy()


def _latents(values, z_dim: int) -> torch.Tensor:
    z = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f"input must be (n, {z_dim}) latent vectors, got {tuple(z.shape)}")
    return z


def _super_resolve(G, values) -> np.ndarray:
    lr = torch.as_tensor(np.asarray(values, dtype=np.float32))
    if lr.ndim != 4 or lr.shape[1] != G.channels:
        raise ValueError(f"input must be (n, {G.channels}, h, w) low-res images in [-1, 1], "
                         f"got {tuple(lr.shape)}")
    with torch.no_grad():
        return G(lr).clamp(-1, 1).numpy()


mlflow.models.set_model(GeneratorModel())
