"""The paper's published numbers (SPEC 5), as data for the reports.

van Hateren unless said, K = 512, linear decoder, 5 seeds. ``active`` is the active fraction.
"""

from __future__ import annotations

__all__ = ["BETA_SWEEP", "CIFAR16_ZOO", "KNN_K10", "SHATTERING", "SPARSE_CODING", "ZOO", "zoo_published"]

#: (family, method) -> metric -> value; ``*_conv`` with the convolutional encoder (``conv+b|lin``).
ZOO: dict[tuple[str, str], dict[str, float]] = {
    ("poisson", "mc"): {
        "nelbo": 167.2, "nelbo_conv": 163.4, "sse": 137.7, "kl": 29.5, "mse_map": 102.4,
        "active": 0.98, "active_conv": 0.82,
    },
    ("poisson", "exact"): {
        "nelbo": 168.0, "nelbo_conv": 162.4, "sse": 138.7, "kl": 29.3, "mse_map": 107.7,
        "active": 0.94, "active_conv": 1.00,
    },
    ("poisson", "straight-through"): {
        "nelbo": 179.3, "nelbo_conv": 179.4, "sse": 158.3, "kl": 21.0, "mse_map": 135.4,
        "active": 0.97, "active_conv": 1.00,
    },
    ("gaussian", "mc"): {
        "nelbo": 160.3, "nelbo_conv": 154.4, "sse": 122.7, "kl": 37.6, "mse_map": 82.3,
        "active": 0.22, "active_conv": 0.25,
    },
    ("laplace", "mc"): {
        "nelbo": 167.3, "nelbo_conv": 159.2, "sse": 126.9, "kl": 40.4, "mse_map": 91.2,
        "active": 0.19, "active_conv": 0.22,
    },
    ("categorical", "mc"): {
        "nelbo": 170.5, "nelbo_conv": 171.9, "sse": 165.0, "kl": 5.5, "mse_map": 157.7,
        "active": 1.00, "active_conv": 1.00,
    },
    ("gaussian-relu", "mc"): {
        "nelbo": 169.3, "nelbo_conv": 160.9, "mse_map": 72.7, "active": 0.11, "active_conv": 0.23,
    },
    ("gaussian-exp", "mc"): {
        "nelbo": 176.6, "nelbo_conv": 164.2, "mse_map": 157.5, "active": 0.09, "active_conv": 0.53,
    },
}  # fmt: skip

#: CIFAR16: only the P-VAE's NELBO is published.
CIFAR16_ZOO: dict[tuple[str, str], dict[str, float]] = {
    ("poisson", "mc"): {"nelbo": 167.3, "nelbo_conv": 162.9},
}


def zoo_published(data: str) -> dict[tuple[str, str], dict[str, float]]:
    """The published zoo numbers that a zoo suite on ``data`` sits beside: CIFAR16's for
    ``cifar16``, else van Hateren's (natural16 is its offline stand-in)."""
    return CIFAR16_ZOO if data == "cifar16" else ZOO


#: P-VAE ``lin|lin`` beta -> (mse_map, lifetime sparsity).
BETA_SWEEP: dict[float, tuple[float, float]] = {
    0.01: (3.4, 0.33),
    0.4: (52.3, 0.50),
    1.0: (102.4, 0.79),
    1.5: (131.0, 0.91),
    4.0: (234.5, 1.00),
}

#: Sparse coding on van Hateren: name -> (mse_map, lifetime sparsity).
SPARSE_CODING: dict[str, tuple[float, float]] = {
    "P-VAE (conv)": (102.7, 0.94),
    "LCA": (50.2, 0.917),
    "ISTA": (86.9, 0.961),
    "LCA on the P-VAE dictionary": (68.0, 0.93),
}

#: MNIST, K = 10: family -> 5-NN accuracy at N = 200 / 1000 / 5000.
KNN_K10: dict[str, tuple[float, float, float]] = {
    "poisson": (0.815, 0.919, 0.946),
    "categorical": (0.705, 0.800, 0.853),
    "laplace": (0.757, 0.869, 0.924),
    "gaussian": (0.673, 0.813, 0.891),
    "gaussian-relu": (0.694, 0.817, 0.877),
    "gaussian-exp": (0.642, 0.784, 0.863),
}

#: MNIST shattering dimensionality: family -> K -> mean accuracy.
SHATTERING: dict[str, dict[int, float]] = {
    "poisson": {10: 0.797, 50: 0.935, 100: 0.949},
    "categorical": {10: 0.795, 50: 0.899, 100: 0.884},
    "gaussian": {10: 0.758, 50: 0.743, 100: 0.763},
    "laplace": {10: 0.751, 50: 0.770, 100: 0.767},
}
