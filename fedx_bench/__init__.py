"""fedx-bench: a reproducibility benchmark suite for unsupervised federated learning (FedX)."""

__version__ = "0.1.0"
