# %% [markdown]
# # The relaxed Poisson distribution
#
# Poisson counts are not differentiable in their rate. The P-VAE makes them so through the arrival
# times of a Poisson process: count the arrivals before t = 1 with a soft indicator instead of a
# hard one. `RelaxedPoisson` is that distribution as a `torch.distributions` object. This tutorial
# draws from it, checks its gradients, and shows what the temperature and the indicator do.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.stats import poisson
from torch.distributions import kl_divergence

from poisson_vae import INDICATORS, RelaxedPoisson

torch.manual_seed(0)

# %% [markdown]
# ## Exact counts at temperature 0
#
# At temperature 0 the indicator is hard and the draws are exact Poisson counts: their histogram
# matches the Poisson probabilities.

# %%
rate = torch.full((100_000,), 3.0)
counts = RelaxedPoisson(rate, temperature=0.0).sample()
values = np.arange(12)
empirical = [(counts == v).float().mean().item() for v in values]
fig, ax = plt.subplots(figsize=(5, 3))
ax.bar(values, empirical, label="samples")
ax.plot(values, poisson.pmf(values, 3.0), "o", color="C1", label="Poisson(3) pmf")
ax.set(xlabel="count", ylabel="probability")
ax.legend()
plt.show()

# %% [markdown]
# ## Relaxed counts and the temperature
#
# At a positive temperature the counts are real numbers, differentiable in the rate. High
# temperatures smear them (and the sigmoid indicator over-counts); low ones approach integers.
# Training anneals the temperature from 1 to 0.05.

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3), sharey=True)
for ax, temperature in zip(axes, (1.0, 0.1, 0.05)):
    z = RelaxedPoisson(rate, temperature=temperature).rsample()
    ax.hist(z.numpy(), bins=200, density=True)
    ax.set(title=f"temperature {temperature}: mean {z.mean():.2f}", xlabel="relaxed count")
plt.show()

# %% [markdown]
# ## Gradients
#
# `rsample` is a reparameterised sample: its gradient with respect to the rate flows back. The
# mean of a Poisson count is its rate, so at a low temperature the mean of dz/d(rate) is close to 1.

# %%
rate = torch.full((200_000,), 5.0, requires_grad=True)
z = RelaxedPoisson(rate, temperature=0.05).rsample()
z.sum().backward()
print(f"mean relaxed count {z.mean():.3f} (rate 5), mean dz/d(rate) {rate.grad.mean():.3f}")

# %% [markdown]
# With `straight_through=True` the forward pass returns the exact count and the backward pass
# uses the relaxed count's gradient.

# %%
rate = torch.full((8,), 2.0, requires_grad=True)
z = RelaxedPoisson(rate, temperature=0.1, straight_through=True).rsample()
z.sum().backward()
print("counts", z.detach().numpy(), "gradient", rate.grad.numpy().round(2))

# %% [markdown]
# ## The indicators
#
# The soft indicator g maps s = (1 - t) / temperature, for an arrival at time t, to how much that
# arrival counts. The sigmoid has infinite support; the others reach exactly 0 and 1 at
# s = -1 and 1, so an arrival only counts partly when it falls within one temperature of t = 1.

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
for indicator in INDICATORS:
    samples = RelaxedPoisson(torch.full((100_000,), 3.0), 0.5, indicator=indicator).rsample()
    axes[1].hist(samples.numpy(), bins=150, histtype="step", density=True, label=indicator)
    print(f"{indicator:8s} mean {samples.mean():.3f}  variance {samples.var():.3f}")
axes[1].set(xlabel="relaxed count (rate 3, temperature 0.5)", ylabel="density")
axes[1].legend()
s = torch.linspace(-3, 3, 301)
for indicator, g in INDICATORS.items():
    axes[0].plot(s.numpy(), g(s)[0].numpy(), label=indicator)
axes[0].set(xlabel="s = (1 - t) / temperature", ylabel="g(s)")
axes[0].legend()
plt.show()

# %% [markdown]
# ## The KL divergence
#
# The KL between two Poisson distributions has a closed form, r f(dr) with f(y) = 1 - y + y log y
# for a posterior rate r dr against a prior rate r: the P-VAE's metabolic cost.

# %%
prior = RelaxedPoisson(torch.tensor(0.5), temperature=0.1)
ratios = torch.linspace(0.05, 6, 200)
kl = kl_divergence(RelaxedPoisson(0.5 * ratios, temperature=0.1), prior)
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(ratios.numpy(), kl.numpy())
ax.set(xlabel="posterior rate / prior rate (prior rate 0.5)", ylabel="KL (nats)")
plt.show()
