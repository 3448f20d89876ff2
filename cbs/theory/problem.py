"""The power-law linear-regression problem: spectrum, target, noise, and the paper's corollary for B*."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cbs.errors import ConfigError


@dataclass(frozen=True)
class PowerLawProblem:
    """x ~ N(0, H), H = diag(λ_i), y = <x, w*> + ε, ε ~ N(0, σ²), coordinates i = 1..dim.

    Conventions (docs/theory.md): λ_i = i^−a (so λ_1 = 1 whatever dim), and w*_i = i^{(a−b)/2}, i.e. the
    source condition λ_i (w*_i)² = i^−b. The dim-truncated problem is exactly the first dim coordinates of the
    infinite one, so changing dim changes nothing but the tail. SGD starts from w_0 = 0.
    """

    a: float = 2.0
    b: float = 4.0
    sigma: float = 1.0
    dim: int = 256

    def __post_init__(self) -> None:
        if not self.a > 1:
            raise ConfigError(f"spectral exponent a={self.a} must be > 1 (tr H must be finite); pass --a > 1")
        if not self.b > 1:
            raise ConfigError(f"source exponent b={self.b} must be > 1 (finite initial risk); pass --b > 1")
        if not self.sigma >= 0:
            raise ConfigError(f"noise level sigma={self.sigma} must be >= 0")
        if int(self.dim) < 1:
            raise ConfigError(f"dim={self.dim} must be a positive integer")

    @property
    def eigenvalues(self) -> np.ndarray:
        """λ_i = i^−a, i = 1..dim (float64)."""
        return np.arange(1, self.dim + 1, dtype=np.float64) ** -self.a

    @property
    def target_sq(self) -> np.ndarray:
        """(w*_i)² = i^{a−b}: the initial error covariance diagonal c_0 (w_0 = 0)."""
        return np.arange(1, self.dim + 1, dtype=np.float64) ** (self.a - self.b)

    @property
    def target(self) -> np.ndarray:
        """w* itself (all coefficients positive; the exact risk depends on (w*_i)² only)."""
        return np.sqrt(self.target_sq)

    @property
    def noise_var(self) -> float:
        return float(self.sigma) ** 2

    @property
    def initial_excess_risk(self) -> float:
        """½ Σ λ_i (w*_i)², the excess risk of w_0 = 0."""
        return 0.5 * float(self.eigenvalues @ self.target_sq)

    @property
    def exponent_theory(self) -> float:
        """The paper's corollary B* ∝ D^{1 − a/min(b, 2a+1)} (0 when b <= a: B* does not grow)."""
        return max(0.0, 1.0 - self.a / min(self.b, 2 * self.a + 1))

    def effective_dim(self, data_size: float) -> float:
        """k*(D) = (D/σ²)^{1/min(b, 2a+1)}: coordinates learned at the bias–variance balance with D samples."""
        if self.noise_var == 0:
            return float("inf")
        return (float(data_size) / self.noise_var) ** (1.0 / min(self.b, 2 * self.a + 1))
