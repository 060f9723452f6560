"""Two-process DDP on CPU (run by test_training.py): each rank saves its final weights.

Lightning's DDP launcher starts the second process by re-running this script with LOCAL_RANK set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import torch

from poisson_vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from poisson_vae.training import train


class SaveReplica(L.Callback):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.global_rank == 0:
            torch.save(
                {k: v.clone() for k, v in module.state_dict().items()}, self.folder / "initial.pt"
            )

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        torch.save(module.state_dict(), self.folder / f"rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    config = RunConfig(
        data=DataConfig(n_train=1200, n_valid=300),
        model=ModelConfig(n_latents=32),
        train=TrainConfig(
            epochs=2,
            batch_size=200,
            warmup_epochs=1,
            accelerator="cpu",
            devices="2",
            strategy="ddp",
            progress=False,
        ),
    )
    torch.set_num_threads(1)
    train(config, folder / "run", callbacks=[SaveReplica(folder)])
