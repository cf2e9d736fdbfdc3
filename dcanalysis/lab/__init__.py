"""Lab-scale models: real data from registry packages, our own diffusion models and discriminative baselines."""
