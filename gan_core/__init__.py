"""Pure-PyTorch GAN core: configs, models, losses, update phases, data sources, metrics. No Ray, no MLflow."""
