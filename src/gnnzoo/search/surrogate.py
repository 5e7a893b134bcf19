"""The FMS surrogate: a gpytorch exact GP with a deep kernel over (hyperparameters + budget, the learning curve so
far, an embedding of the run's latest checkpoint), and expected improvement.

φ(x) = LeakyReLU(Linear(concat(a, b, c))) with
  a = MLP([hyperparameters in [0, 1], budget / max_epochs])        (64)
  b = Conv1d over [curve, mask] (k = 3, 4 channels) + max-pool over epochs   (4)     -- ``use_curve``
  c = MLP([weight features (z-scored), has-weights flag])          (32)    -- ``use_weights``
and the GP is ``ConstantMean + ScaleKernel(RBF)`` on φ, trained with the features by the exact marginal
likelihood (Adam, full batch). ``use_weights=False`` is DyHPO's surrogate. The first fit trains ``fit_steps_initial``
steps from a fresh initialisation; later fits refine the previous model for ``refit_steps`` steps on the grown
data (as DyHPO and FMS do). A fit that fails (a Cholesky error, a NaN loss) is retried once from scratch with
more jitter; if that fails too, :meth:`fit` returns the error and the caller falls back (recorded, never a crash).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Inputs:
    """One row per (trial, target budget): what the surrogate may see when it forecasts that budget."""

    hp: Tensor  # [n, d_hp] in [0, 1]
    budget: Tensor  # [n] target epochs / max_epochs
    curve: Tensor  # [n, L] the monitored metric per epoch so far (0 after the last trained epoch)
    mask: Tensor  # [n, L] 1 where the curve has a value
    weights: Tensor  # [n, d_w] features of the checkpoint at the curve's last epoch (0 where none)
    has_weights: Tensor  # [n] 1 where a checkpoint exists

    def pack(self) -> Tensor:
        return torch.cat(
            [self.hp, self.budget[:, None], self.curve, self.mask, self.weights, self.has_weights[:, None]], 1
        )


class _Features(nn.Module):
    def __init__(self, d_hp: int, length: int, d_w: int, use_curve: bool, use_weights: bool, width: int):
        super().__init__()
        self.d_hp, self.length, self.d_w = d_hp, length, d_w
        self.use_curve, self.use_weights = use_curve, use_weights and d_w > 0
        self.hp = nn.Sequential(nn.Linear(d_hp + 1, 64), nn.LeakyReLU(), nn.Linear(64, 64), nn.LeakyReLU())
        d = 64
        if self.use_curve:
            self.conv = nn.Conv1d(2, 4, kernel_size=3, padding=1)
            d += 4
        if self.use_weights:
            self.w = nn.Sequential(nn.Linear(d_w + 1, 32), nn.LeakyReLU())
            d += 32
        self.out = nn.Linear(d, width)

    def forward(self, x: Tensor) -> Tensor:
        i = self.d_hp + 1
        parts = [self.hp(x[:, :i])]
        curve, mask = x[:, i : i + self.length], x[:, i + self.length : i + 2 * self.length]
        i += 2 * self.length
        if self.use_curve:
            h = F.leaky_relu(self.conv(torch.stack([curve, mask], 1)))  # [n, 4, L]
            parts.append(h.amax(-1))
        if self.use_weights:
            parts.append(self.w(x[:, i : i + self.d_w + 1]))
        return F.leaky_relu(self.out(torch.cat(parts, 1)))


def _gp_class():
    import gpytorch

    class DeepKernelGP(gpytorch.models.ExactGP):
        def __init__(self, x: Tensor, y: Tensor, likelihood, features: nn.Module):
            super().__init__(x, y, likelihood)
            self.features = features
            self.mean = gpytorch.means.ConstantMean()
            self.covar = gpytorch.kernels.ScaleKernel(gpytorch.kernels.RBFKernel())

        def forward(self, x: Tensor):
            z = self.features(x)
            return gpytorch.distributions.MultivariateNormal(self.mean(z), self.covar(z))

    return DeepKernelGP


class DeepKernelSurrogate:
    """The FMS surrogate: an exact GP (gpytorch) whose kernel reads learned features of (hyperparameters, target
    budget, the learning curve so far, the checkpoint's weight features) — a deep kernel.

    Args:
        d_hp: width of the encoded hyperparameters; length: the curve's length (max epochs); d_w: width of the
            weight features (0: none).
        use_curve, use_weights: which inputs the feature network reads (``dyhpo``: no weights).
        width: feature width; lr: Adam's learning rate for features and GP hyperparameters.
        fit_steps_initial, refit_steps: steps of the first fit and of every refit (warm-started).
        jitter: added to the kernel's diagonal (a failed fit retries with 100x it); seed: of the feature network.

    Shapes:
        - **fit:** :class:`Inputs` of ``n`` rows, ``y [n]``
        - **predict:** :class:`Inputs` of ``m`` rows -> ``(mean [m], std [m])``
    """

    def __init__(
        self,
        d_hp: int,
        length: int,
        d_w: int,
        use_curve: bool = True,
        use_weights: bool = True,
        width: int = 32,
        lr: float = 1e-2,
        fit_steps_initial: int = 300,
        refit_steps: int = 50,
        jitter: float = 1e-4,
        seed: int = 0,
    ):
        self.dims = (d_hp, length, d_w)
        self.use_curve, self.use_weights = use_curve, use_weights
        self.width, self.lr = width, lr
        self.fit_steps_initial, self.refit_steps = int(fit_steps_initial), int(refit_steps)
        self.jitter, self.seed = jitter, seed
        self.model = None
        self.likelihood = None
        self.y_mean, self.y_std = 0.0, 1.0
        self.w_mean = self.w_std = None
        self.fits = 0

    def _scale(self, inp: Inputs) -> Tensor:
        w = inp.weights
        if self.w_mean is not None and w.shape[1]:
            w = (w - self.w_mean) / self.w_std * inp.has_weights[:, None]
        curve = (inp.curve - self.y_mean) / self.y_std * inp.mask
        return Inputs(inp.hp, inp.budget, curve, inp.mask, w, inp.has_weights).pack().float()

    def _build(self, x: Tensor, y: Tensor):
        import gpytorch

        torch.manual_seed(self.seed + 7919 * self.fits)
        self.likelihood = gpytorch.likelihoods.GaussianLikelihood(
            noise_constraint=gpytorch.constraints.GreaterThan(1e-4)
        )
        self.model = _gp_class()(
            x, y, self.likelihood, _Features(*self.dims, self.use_curve, self.use_weights, self.width)
        )

    def _train(self, x: Tensor, y: Tensor, steps: int, jitter: float) -> float:
        import gpytorch

        self.model.train()
        self.likelihood.train()
        opt = torch.optim.Adam(self.model.parameters(), lr=self.lr)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(self.likelihood, self.model)
        loss = torch.tensor(float("nan"))
        with gpytorch.settings.cholesky_jitter(float_value=jitter, double_value=jitter):
            for _ in range(steps):
                opt.zero_grad()
                loss = -mll(self.model(x), y)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"surrogate loss became {loss.item()}")
                loss.backward()
                opt.step()
        return float(loss.detach())

    def fit(self, inp: Inputs, y: Tensor) -> str | None:
        """Fit on ``y`` (the monitored metric, larger = better); returns None, or the error of a fit that failed
        twice (the surrogate is then unusable until the next successful fit)."""
        y = y.double()
        self.y_mean, self.y_std = float(y.mean()), float(y.std()) if len(y) > 1 and float(y.std()) > 1e-8 else 1.0
        has = inp.has_weights > 0
        if inp.weights.shape[1] and has.any():
            w = inp.weights[has]
            self.w_mean, self.w_std = w.mean(0), w.std(0, unbiased=False).clamp_min(1e-6)
        else:
            self.w_mean = self.w_std = None
        x, yz = self._scale(inp), ((y - self.y_mean) / self.y_std).float()
        error = None
        for attempt in range(2):
            try:
                fresh = self.model is None or attempt > 0
                if fresh:
                    self._build(x, yz)
                else:
                    self.model.set_train_data(x, yz, strict=False)
                self._train(
                    x, yz, self.fit_steps_initial if fresh else self.refit_steps, self.jitter * (100 if attempt else 1)
                )
                self.fits += 1
                return None
            except Exception as e:  # NotPSDError, NaN: retry from scratch with more jitter, then give up
                error = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                self.model = None
        return error

    @torch.no_grad()
    def predict(self, inp: Inputs) -> tuple[Tensor, Tensor]:
        """Posterior mean and standard deviation of the metric (observation noise included)."""
        import gpytorch

        if self.model is None:
            raise RuntimeError("the surrogate has not been fitted")
        self.model.eval()
        self.likelihood.eval()
        with (
            gpytorch.settings.fast_pred_var(),
            gpytorch.settings.cholesky_jitter(float_value=self.jitter),
            warnings.catch_warnings(),
        ):
            warnings.simplefilter("ignore", gpytorch.utils.warnings.NumericalWarning)  # jitter added: expected
            post = self.likelihood(self.model(self._scale(inp)))
            mean, std = post.mean.double(), post.stddev.double()
        return mean * self.y_std + self.y_mean, std * self.y_std


class WeightBasis:
    """Weight features reduced to ``k`` dimensions: z-scored, then projected onto the top ``k`` principal directions
    of a *reference* set of checkpoints (fitted on the zoo, never on the search's own observations), each direction
    scaled to unit variance on the reference. With ~10–200 observations a GP cannot weigh ~140 raw statistics;
    a few directions that vary across trained checkpoints it can.

    Shapes:
        - **fit:** ``ref [n, d]`` (n > k)
        - **project:** ``[m, d]`` -> ``[m, k]``
    """

    def __init__(self, mean: Tensor, std: Tensor, components: Tensor, scale: Tensor, n_reference: int):
        self.mean, self.std, self.components, self.scale = mean, std, components, scale
        self.n_reference = int(n_reference)

    @property
    def k(self) -> int:
        return int(self.components.shape[1])

    @classmethod
    def fit(cls, ref: Tensor, k: int) -> "WeightBasis":
        ref = torch.as_tensor(ref, dtype=torch.float64)
        if ref.ndim != 2 or ref.shape[0] <= k:
            raise ValueError(f"a {k}-direction weight basis needs more than {k} reference checkpoints, got {len(ref)}")
        mean, std = ref.mean(0), ref.std(0, unbiased=False).clamp_min(1e-8)
        z = (ref - mean) / std
        _, _, vh = torch.linalg.svd(z, full_matrices=False)
        comps = vh[:k].T  # [d, k]
        sign = torch.sign(comps[comps.abs().argmax(0), torch.arange(comps.shape[1])])  # deterministic signs
        comps = comps * sign
        scale = (z @ comps).std(0, unbiased=False).clamp_min(1e-8)
        return cls(mean, std, comps, scale, len(ref))

    def project(self, w: Tensor) -> Tensor:
        z = (torch.as_tensor(w, dtype=torch.float64) - self.mean) / self.std
        return ((z @ self.components) / self.scale).float()

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("mean", "std", "components", "scale")} | {
            "n_reference": self.n_reference
        }

    @classmethod
    def from_dict(cls, d: dict) -> "WeightBasis":
        t = {k: torch.tensor(d[k], dtype=torch.float64) for k in ("mean", "std", "components", "scale")}
        return cls(t["mean"], t["std"], t["components"], t["scale"], d["n_reference"])


def expected_improvement(mean: Tensor, std: Tensor, best: Tensor) -> Tensor:
    """EI of a larger-is-better metric over the incumbent ``best`` (per candidate)."""
    std = std.clamp_min(1e-9)
    z = (mean - best) / std
    normal = torch.distributions.Normal(torch.zeros_like(z), torch.ones_like(z))
    return (mean - best) * normal.cdf(z) + std * torch.exp(normal.log_prob(z))


def kendall_tau(pred, true) -> float:
    """Kendall τ (tau-b) between predictions and outcomes of the same items (nan below three items)."""
    from scipy.stats import kendalltau

    if len(pred) < 3:
        return math.nan
    t = kendalltau(list(pred), list(true)).statistic
    return float(t) if t == t else math.nan
