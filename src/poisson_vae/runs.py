"""The run folder: its layout, its kind, its configuration and metrics, and starting or resuming it.

Every command that writes or reads a run goes through :class:`Run`; no other module spells a run
file's name. A run folder holds::

    config.json            what the run trains (sections data + model + train for a VAE,
                           data + sparse_coding for dictionary learning)
    checkpoints/last.ckpt  a VAE's Lightning state (last.safetensors for dictionary learning),
                           rewritten after every epoch: write beside, then rename into place
    logs/                  training logs (a VAE: logs/version_N/metrics.csv per start;
                           dictionary learning: logs/metrics.csv)
    model.safetensors      final weights (dictionary learning: dictionary.safetensors)   } when
    dictionary.png         the atoms                                                      } finished,
    training_curves.png    a VAE's logged losses, beta and temperature by step            } in order
    metrics.json           validation metrics, written last: the run is finished          }
    eval/                  ``pvae evaluate``'s metrics.json (last), report.md and figures
    .lock                  held while a process trains the run

A run *has started* once it has a checkpoint, weights or metrics; a folder with only a
``config.json`` is a start that failed before its first epoch finished, and a new start may
replace it.
"""

from __future__ import annotations

import contextlib
import csv
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from .config import RunConfig, SparseCodingRunConfig, config_from_dict
from .errors import CheckpointError, ConfigError, FieldError, braces
from .files import read_json, write_json

__all__ = [
    "KINDS",
    "Run",
    "RunBusyError",
    "RunExistsError",
    "TrainingHistory",
    "check_output_path",
    "is_replica",
]

#: The kinds of run and the configuration class of each.
KINDS: dict[str, type] = {"vae": RunConfig, "sparse-coding": SparseCodingRunConfig}


class RunExistsError(FieldError):
    """The output folder already holds a run, or files that are not a run."""


class RunBusyError(RunExistsError):
    """Another process is training the run."""


def is_replica() -> bool:
    """True in the processes of a multi-device job other than its first (global rank > 0): the
    replicas that Lightning's launchers, torchrun or SLURM start, which re-run the same code."""
    return any(
        os.environ.get(name, "0").strip() not in ("", "0")
        for name in ("LOCAL_RANK", "NODE_RANK", "RANK", "SLURM_PROCID")
    )


def _folder(path: str | Path) -> Path:
    """``path`` as a run folder: refuses the empty path, a file, and a path inside a file."""
    if str(path).strip() == "":
        raise ConfigError("{0} is empty: name a folder for the run", "out")
    path = Path(path)
    existing = next((item for item in (path, *path.parents) if item.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(
            f"{{0}} {braces(str(path))}: {braces(str(existing))} is a file, not a folder; choose "
            "another {0}",
            "out",
        )
    return path


class TrainingHistory(NamedTuple):
    """What a VAE run logged while training, over all its starts.

    Attributes:
        columns: ``{column: (n, 2) (step, value)}`` by increasing step, e.g. ``train/loss``,
            ``val/nelbo``.
        resumed_at: the first logged step of each start after the first.
        epochs: ``{step: epoch}`` of every logged row, epochs counted from 1 (a validation logged
            at the end of epoch 5 has epoch 5).
    """

    columns: dict[str, np.ndarray]
    resumed_at: list[int]
    epochs: dict[int, int]


class Run:
    """A run folder (which may not exist yet).

    Args:
        directory: the folder.
    """

    CONFIG = "config.json"
    METRICS = "metrics.json"
    WEIGHTS: ClassVar[dict[str, str]] = {
        "vae": "model.safetensors",
        "sparse-coding": "dictionary.safetensors",
    }
    CHECKPOINT: ClassVar[dict[str, str]] = {
        "vae": "checkpoints/last.ckpt",
        "sparse-coding": "checkpoints/last.safetensors",
    }
    FIGURE = "dictionary.png"
    LOGS = "logs"
    #: Lightning's CSV log of one start of a VAE run, under ``logs/version_N/``.
    TRAINING_LOG = "metrics.csv"
    CURVES = "training_curves.png"
    LOG = "train.log"
    EVAL = "eval"
    GAP = "amortization_gap"
    SAMPLES = "samples.png"
    LOCK = ".lock"
    #: What a start writes before its first epoch finishes (removed when a new start replaces it).
    _STARTUP = (CONFIG, LOGS, LOG, "tensorboard")
    #: Files of writes a kill interrupted (``files.py`` writes beside, then renames).
    _TEMPORARY = ".*.tmp"

    def __init__(self, directory: str | Path) -> None:
        self.directory = _folder(directory)
        self._lock: Any = None
        self._stored: Any = None  # config.json as read, until this object writes or clears it

    def __repr__(self) -> str:
        return f"Run({str(self.directory)!r})"

    # --- layout ------------------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.directory / self.CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.directory / self.METRICS

    @property
    def kind(self) -> str | None:
        """``vae`` or ``sparse-coding`` from the stored configuration; None without one."""
        if not self.config_path.is_file():
            return None
        document = self._document()
        return "sparse-coding" if isinstance(document, dict) and "sparse_coding" in document else "vae"

    def _kind_or(self, default: str) -> str:
        return self.kind or default

    @property
    def weights_path(self) -> Path:
        return self.directory / self.WEIGHTS[self._kind_or("vae")]

    @property
    def checkpoint(self) -> Path:
        return self.directory / self.CHECKPOINT[self._kind_or("vae")]

    @property
    def figure_path(self) -> Path:
        return self.directory / self.FIGURE

    @property
    def logs(self) -> Path:
        return self.directory / self.LOGS

    @property
    def training_logs(self) -> list[Path]:
        """The CSV log of every start of a VAE run, in order (``logs/version_N/metrics.csv``)."""
        versions = self.logs.glob(f"version_*/{self.TRAINING_LOG}") if self.logs.is_dir() else []
        return sorted(
            (path for path in versions if path.parent.name.removeprefix("version_").isdigit()),
            key=lambda path: int(path.parent.name.removeprefix("version_")),
        )

    @property
    def curves_path(self) -> Path:
        """The figure of the training curves (a finished VAE run's)."""
        return self.directory / self.CURVES

    def training_history(self) -> TrainingHistory:
        """The metrics the VAE run logged while training, its starts joined in order.

        Where a start resumed from a checkpoint older than the last step its predecessor logged
        (a run killed mid-epoch), its rows replace the predecessor's from its first step on.
        """
        columns: dict[str, list[tuple[float, float]]] = {}
        epochs: dict[int, int] = {}
        resumed_at = []
        for path in self.training_logs:
            with open(path, newline="") as handle:
                rows = [row for row in csv.DictReader(handle) if row.get("step")]
            if not rows:
                continue
            first = min(int(row["step"]) for row in rows)
            if any(columns.values()):
                resumed_at.append(first)
            columns = {name: [p for p in points if p[0] < first] for name, points in columns.items()}
            epochs = {step: epoch for step, epoch in epochs.items() if step < first}
            for row in rows:
                if row.get("epoch"):
                    epochs[int(row["step"])] = int(row["epoch"]) + 1
                for name, value in row.items():
                    if name not in ("epoch", "step") and value not in ("", None):
                        columns.setdefault(name, []).append((float(row["step"]), float(value)))
        return TrainingHistory(
            {name: np.array(points).reshape(-1, 2) for name, points in columns.items() if points},
            resumed_at,
            epochs,
        )

    @property
    def log_path(self) -> Path:
        """The run's progress log (a line per epoch; appended to by every start)."""
        return self.directory / self.LOG

    @property
    def eval_dir(self) -> Path:
        return self.directory / self.EVAL

    @property
    def eval_metrics_path(self) -> Path:
        return self.eval_dir / self.METRICS

    @property
    def gap_dir(self) -> Path:
        return self.directory / self.GAP

    def owns(self, path: str | Path) -> bool:
        """Whether ``path`` is one of the files or folders this run writes."""
        path = Path(path).resolve()
        mine = [self.config_path, self.metrics_path, self.figure_path, self.logs, self.eval_dir]
        mine += [self.log_path, self.curves_path]
        mine += [self.directory / name for name in (*self.WEIGHTS.values(), "checkpoints")]
        mine += [
            self.gap_dir,
            self.directory / self.LOCK,
            *(self.directory / name for name in self._STARTUP),
        ]
        return any(path == item.resolve() or item.resolve() in path.parents for item in mine)

    # --- state -------------------------------------------------------------------------------
    @property
    def started(self) -> bool:
        """A checkpoint, weights or metrics exist: something was trained."""
        names = [*self.CHECKPOINT.values(), *self.WEIGHTS.values(), self.METRICS]
        return any((self.directory / name).exists() for name in names)

    @property
    def finished(self) -> bool:
        """The final metrics exist (written last)."""
        return self.metrics_path.is_file()

    @property
    def evaluated(self) -> bool:
        return self.eval_metrics_path.is_file()

    # --- configuration and metrics -----------------------------------------------------------
    def _document(self) -> Any:
        if self._stored is None:
            self._stored = read_json(self.config_path, ConfigError)
        return self._stored

    def config_document(self) -> dict:
        """The ``config.json`` document as stored (for readers of runs of older versions)."""
        if not self.config_path.is_file():
            raise ConfigError(f"{self.directory} has no {self.CONFIG}; is it a run folder?")
        return self._json(self.config_path)

    def stored_config(self, kind: type | None = None) -> Any:
        """The run's configuration (missing options take their defaults); None without one.

        Args:
            kind: :class:`~poisson_vae.config.RunConfig` or
                :class:`~poisson_vae.config.SparseCodingRunConfig` to insist on.

        Raises:
            ConfigError: the file is unreadable or invalid (named), or holds the other kind.
        """
        if not self.config_path.is_file():
            return None
        wanted = next((name for name, cls in KINDS.items() if cls is kind), None)
        if wanted is not None:
            self._require_kind(wanted)
        try:
            document = self._document()
            return config_from_dict(document) if kind is None else kind.from_dict(document)
        except ConfigError as error:  # the file's own keys: not for an interface to rename
            raise ConfigError(f"{self.config_path}: {error}") from None

    def config(self, kind: type | None = None) -> Any:
        """:meth:`stored_config`, refusing a folder without one."""
        config = self.stored_config(kind)
        if config is None:
            raise CheckpointError(
                f"{self.directory} has no {self.CONFIG}: is it a run folder of `pvae train` or "
                "`pvae sparse-coding train`?"
            )
        return config

    def write_config(self, config: Any) -> None:
        """Write ``config.json`` (not from the replicas of a multi-device job)."""
        if not is_replica():
            write_json(self.config_path, config.to_dict())
            self._stored = None

    def metrics(self) -> dict:
        """The final validation metrics of a finished run."""
        if not self.finished:
            raise ConfigError(
                f"{braces(str(self.directory))} has not finished ({self.METRICS} is missing); "
                "resume it with {0}",
                "resume",
            )
        return self._json(self.metrics_path)

    def eval_metrics(self) -> dict:
        """``pvae evaluate``'s metrics of the run."""
        if not self.evaluated:
            raise ConfigError(
                f"{self.directory} has no {self.EVAL}/{self.METRICS}: run `pvae evaluate "
                f"{self.directory}` first"
            )
        return self._json(self.eval_metrics_path)

    @staticmethod
    def _json(path: Path) -> dict:
        document = read_json(path, ConfigError)
        if not isinstance(document, dict):
            raise ConfigError(f"{path} must hold a JSON object, got {type(document).__name__}")
        return document

    def write_metrics(self, metrics: dict) -> None:
        write_json(self.metrics_path, metrics)

    def _require_kind(self, kind: str) -> None:
        """Refuse a run of the other kind."""
        if self.kind is not None and self.kind != kind:
            names = {"vae": "VAE", "sparse-coding": "sparse-coding"}
            raise ConfigError(
                f"{self.directory} holds a {names[self.kind]} run, not a {names[kind]} run"
            )

    def require_weights(self, kind: str) -> Path:
        """The final weights of a finished run of ``kind``; a one-line error otherwise."""
        self._require_kind(kind)
        for path in (self.config_path, self.directory / self.WEIGHTS[kind]):
            if not path.is_file():
                raise ConfigError(
                    f"{path} is missing: point at a finished run (resume an unfinished one first)"
                )
        return self.directory / self.WEIGHTS[kind]

    # --- starting and resuming ---------------------------------------------------------------
    @contextlib.contextmanager
    def session(self, resume: bool) -> Iterator[Run]:
        """Hold the run for training: refuse what cannot start, lock it, release it at the end.

        A new start (``resume`` False) refuses a folder that holds a started run (or files that
        are not a run) and clears a failed start; a resume refuses a checkpoint that is not a
        file. The lock is an OS file lock, released when the process ends however it ends. The
        replicas of a multi-device job neither check nor lock (their first process does).

        Raises:
            RunExistsError: the folder holds a run (pass ``resume``) or foreign files.
            RunBusyError: another process holds the run.
        """
        if is_replica():
            yield self
            return
        self._check_start(resume)
        created = not self.directory.exists()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OSError(f"cannot create the run folder {self.directory}: {error.strerror}") from None
        self._acquire()
        try:
            self._check_start(resume)  # again, under the lock
            if not resume or not self.started:
                self._clear_failed_start()
            self._remove_temporary_files()
            yield self
        finally:
            self._release()
            if created and not any(self.directory.iterdir()):
                self.directory.rmdir()  # a start refused before it wrote anything leaves nothing

    def _check_start(self, resume: bool) -> None:
        if not self.directory.is_dir():
            return
        if not self.config_path.exists():
            if any((self.directory / name).exists() for name in self.CHECKPOINT.values()):
                raise ConfigError(
                    f"{self.checkpoint} has no {self.config_path} beside it to say what it "
                    "trained; restore it, or delete the checkpoint to start again"
                )
            self._refuse_foreign(
                [entry for entry in self.directory.iterdir() if entry.name != self.LOCK]
            )
            return
        if not self.started:  # a failed start, which the new one replaces: if it is one
            self._refuse_foreign(
                [
                    entry
                    for entry in self.directory.iterdir()
                    if not self.owns(entry) and not entry.match(self._TEMPORARY)
                ]
            )
            try:
                self.stored_config()
            except ConfigError as error:
                raise RunExistsError(
                    f"{braces(str(error))}; it is not a run's: choose a new or empty folder for {{0}}",
                    "out",
                ) from None
        if not resume and self.started:
            raise RunExistsError(
                f"{braces(str(self.directory))} already holds a run: pass {{0}} to continue it, or "
                "choose another {1}",
                "resume",
                "out",
            )
        checkpoint = self.checkpoint
        if checkpoint.exists() and not checkpoint.is_file():
            raise ConfigError(
                f"{checkpoint} is not a file; move it away, then resume (or start a new run)"
            )

    def _refuse_foreign(self, entries: list[Path]) -> None:
        """Refuse a folder that holds ``entries``, files or folders that are not this run's."""
        if entries:
            names = sorted(entry.name for entry in entries)
            shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
            raise RunExistsError(
                f"{braces(str(self.directory))} holds files that are not a run "
                f"({braces(shown)}); choose a new or empty folder for {{0}}",
                "out",
            )

    def _clear_failed_start(self) -> None:
        """Remove what a start that never finished an epoch wrote (its config and logs)."""
        self._stored = None
        for name in self._STARTUP:
            path = self.directory / name
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)

    def _remove_temporary_files(self) -> None:
        """Temporary files of writes that a kill interrupted (see :mod:`poisson_vae.files`)."""
        for folder in (self.directory, self.directory / "checkpoints"):
            for path in folder.glob(self._TEMPORARY) if folder.is_dir() else ():
                path.unlink(missing_ok=True)

    def _acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; concurrent starts are not detected
            return
        path = self.directory / self.LOCK
        while True:
            handle = open(path, "a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise RunBusyError(
                    f"{braces(str(self.directory))} is being trained by another process (pid "
                    f"{braces(holder)}); wait for it to finish, or choose another {{0}}",
                    "out",
                ) from None
            # The holder before us removes the file as it releases it: lock the file in place.
            if path.exists() and os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino:
                break
            handle.close()
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock = handle

    def _release(self) -> None:
        if self._lock is not None:
            (self.directory / self.LOCK).unlink(missing_ok=True)
            self._lock.close()  # closing releases the lock
            self._lock = None


def check_output_path(path: str | Path, what: str = "out") -> Path:
    """Refuse an output file or folder that is a file a run writes (e.g. ``RUN/dictionary.png``)."""
    path = Path(path)
    for folder in (path.parent, *path.parent.parents):
        if (folder / Run.CONFIG).is_file() and Run(folder).owns(path):
            raise ConfigError(
                f"{{0}} {braces(str(path))} would overwrite a file of the run in "
                f"{braces(str(folder))}; choose another {{0}}",
                what,
            )
    return path
