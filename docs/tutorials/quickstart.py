# %% [markdown]
# # Quick start: a P-VAE on natural image patches
#
# This tutorial trains a small P-VAE on `natural16`, the whitened 16 x 16 patches of photographs
# that ship inside scikit-image and scikit-learn, then looks at what a P-VAE learns: its
# dictionary, its spike counts and how sparse they are, beside a G-VAE (Gaussian latents). For the
# comparison it loads the two models the package ships, trained by the main job for 150 epochs.

# %%
import tempfile

import matplotlib.pyplot as plt
import torch

from poisson_vae import load_model, load_pretrained
from poisson_vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from poisson_vae.figures import atom_mosaic
from poisson_vae.metrics import evaluate_model
from poisson_vae.training import train

# %% [markdown]
# ## Train a P-VAE
#
# `train` is what `pvae train` runs: the paper's recipe on Lightning (Adamax, warm-up, a cosine
# learning rate, beta and temperature annealed over the first half of training), writing a run
# folder that `load_model` reads back. This one is small: 128 latents, a linear encoder and
# decoder (`lin|lin`), 10 epochs of 10,000 patches, a few seconds on a CPU.

# %%
data = DataConfig(data="natural16", n_train=10_000, n_valid=2_000)
config = RunConfig(
    data=data,
    model=ModelConfig(latent="poisson", arch="lin|lin", n_latents=128),
    train=TrainConfig(epochs=10, progress=False),
)
folder = tempfile.mkdtemp()
metrics = train(config, f"{folder}/pvae")
small = load_model(f"{folder}/pvae")
print(f"validation NELBO {metrics['nelbo']:.1f}, mse_map {metrics['mse_map']:.1f}")

# %% [markdown]
# ## The dictionary
#
# With a linear decoder, x_hat = Phi z: each column of Phi, an *atom*, is the image that one spike
# of its latent adds. Sorted by how much each latent is used (its KL), the atoms of a trained
# P-VAE are localised, oriented and band-pass, like the receptive fields of simple cells in V1;
# ten epochs already show the beginning of it, the shipped model's 150 epochs show it clearly.

# %%
valid = data.load()["valid"]  # (2000, 1, 16, 16)
models = {
    "small P-VAE": small,
    "P-VAE": load_pretrained("natural16-pvae"),
    "G-VAE": load_pretrained("natural16-gvae"),
}


def show_atoms(model, title, ax, n_atoms=128):
    kl = torch.tensor(evaluate_model(model, valid)["kl_per_latent"])
    dictionary = model.decoder.dictionary.detach()  # (256, K): one atom per column
    atoms = dictionary.T.reshape(-1, 16, 16)[kl.argsort(descending=True)][:n_atoms]
    ax.imshow(atom_mosaic(atoms.numpy(), n_columns=16), cmap="gray", vmin=-1, vmax=1)
    ax.set_title(title)
    ax.axis("off")


fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
for ax, (name, model) in zip(axes, models.items()):
    show_atoms(model, f"{name}: 128 most used atoms", ax)
plt.show()

# %% [markdown]
# ## Spike counts
#
# The P-VAE's posterior is a Poisson distribution per latent. `model.posterior(x)` returns it as a
# `torch.distributions` object: its mean is the firing rate, and `sample()` draws exact counts.

# %%
x = torch.from_numpy(valid)
with torch.no_grad():
    posterior = models["P-VAE"].posterior(x)
    counts = posterior.sample()  # (2000, 512)
values, frequency = torch.unique(counts, return_counts=True)
print(f"{(counts == 0).float().mean():.1%} of the counts are zero")
fig, axes = plt.subplots(1, 2, figsize=(11, 3))
axes[0].bar(values.numpy(), frequency.numpy() / counts.numel())
axes[0].set(xlabel="spike count", ylabel="fraction of (patch, latent) pairs", yscale="log")
axes[1].imshow(counts[:60].T, aspect="auto", cmap="Greys", interpolation="nearest")
axes[1].set(xlabel="patch", ylabel="latent", title="spike counts of 60 patches")
plt.show()

# %% [markdown]
# ## Sparsity, P-VAE against G-VAE
#
# `evaluate_model` computes the paper's metrics on hard samples: the portion of zeros, lifetime
# sparsity (how selectively each latent responds across patches, Treves-Rolls: 0 when it responds
# equally to all, 1 when to one only) and the number of active latents. The G-VAE's Gaussian code
# is dense: no value is exactly zero, and it uses few directions.

# %%
for name, model in models.items():
    metrics = evaluate_model(model, valid)
    print(
        f"{name:12s} mse_map {metrics['mse_map']:5.1f}  zeros {metrics['portion_zeros']:.2f}  "
        f"lifetime sparsity {metrics['lifetime_sparsity']:.2f}  "
        f"active latents {metrics['n_active']}/{model.config.n_latents}"
    )

# %% [markdown]
# `pvae evaluate pretrained:natural16-pvae` computes all of this on the whole validation set, with
# Gabor fits of the atoms, and writes a report and its figures.
