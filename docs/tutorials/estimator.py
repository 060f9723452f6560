# %% [markdown]
# # Your own data with scikit-learn
#
# `PoissonVAETransformer` is a scikit-learn transformer: it trains a VAE (any latent family) with
# the same Lightning module and recipe as `pvae train`, in memory, on any (N, D) array, and fits
# into pipelines, cross-validation and grid search. This tutorial learns spike-count codes of
# scikit-learn's 8 x 8 handwritten digits, reads out the digit from them, and compares the P-VAE's
# code with a G-VAE's and with PCA.

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from poisson_vae import PoissonVAETransformer

X, y = load_digits(return_X_y=True)  # (1797, 64) pixel intensities 0-16, and the digit
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)

# %% [markdown]
# ## A P-VAE in a pipeline
#
# Inputs are standardised first (the recipe assumes zero-mean, unit-variance features), the
# P-VAE's rates are standardised again for the classifier. `transform` returns the deterministic
# posterior means, the firing rates; `random_state` makes the fit repeatable.

# %%
pvae = PoissonVAETransformer(n_latents=64, epochs=30, random_state=0)
pipe = make_pipeline(StandardScaler(), pvae, StandardScaler(), LogisticRegression(max_iter=5000))
pipe.fit(X_train, y_train)
print(f"test accuracy from the P-VAE's rates: {pipe.score(X_test, y_test):.3f}")

# %% [markdown]
# ## Spike counts
#
# `sample_codes` draws hard posterior samples: for the P-VAE, integer spike counts. Most are zero:
# each digit is coded by a few spikes of a few latents.

# %%
codes = pvae.sample_codes(pipe[0].transform(X_test), random_state=0)  # (450, 64)
print(f"{(codes == 0).mean():.0%} of the counts are zero; at most {codes.max():.0f} spikes")
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].imshow(codes[:40].T, aspect="auto", cmap="Greys", interpolation="nearest")
axes[0].set(xlabel="test digit", ylabel="latent", title="spike counts")
axes[1].hist((codes > 0).sum(1), bins=np.arange(0, 66, 2))
axes[1].set(xlabel="latents that fire for a digit", ylabel="digits")
plt.show()

# %% [markdown]
# ## The dictionary
#
# A linear decoder's atoms are `components_`, (K, D) rows as in scikit-learn's own
# `DictionaryLearning`. `inverse_transform` decodes codes back into (standardised) pixels.

# %%
atoms = pvae.components_.reshape(-1, 8, 8)
order = np.argsort(-(codes > 0).mean(0))  # most often firing first
fig, axes = plt.subplots(4, 16, figsize=(10, 2.8))
for ax, atom in zip(axes.flat, atoms[order]):
    ax.imshow(atom, cmap="gray")
    ax.axis("off")
plt.show()

# %% [markdown]
# ## Choosing the number of latents
#
# Every constructor parameter is a hyper-parameter for scikit-learn's model selection. `score`
# is minus the NELBO, so a grid search on the transformer alone picks the best density model.

# %%
search = GridSearchCV(
    make_pipeline(StandardScaler(), PoissonVAETransformer(epochs=15, random_state=0)),
    {"poissonvaetransformer__n_latents": [16, 64]},
    cv=2,
)
search.fit(X_train)
print("best:", search.best_params_, f"(NELBO {-search.best_score_:.1f})")

# %% [markdown]
# ## Against a G-VAE and PCA
#
# The same read-out from a G-VAE's posterior means and from 64 principal components.

# %%
for name, features in [
    ("G-VAE", PoissonVAETransformer(latent="gaussian", n_latents=64, epochs=30, random_state=0)),
    ("PCA", PCA(n_components=64, random_state=0)),
]:
    baseline = make_pipeline(
        StandardScaler(), features, StandardScaler(), LogisticRegression(max_iter=5000)
    )
    baseline.fit(X_train, y_train)
    print(f"test accuracy from the {name} features: {baseline.score(X_test, y_test):.3f}")
