"""Test-wide settings: one intra-op thread (tiny tensors are slower with thread-pool overhead, and the CI
machine has 2 cores) and no GPU assumptions."""

import torch

torch.set_num_threads(1)
