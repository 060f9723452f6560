"""The ``pvae`` command line.

``pvae train`` exposes every field of :class:`~poisson_vae.training.DataConfig`,
:class:`~poisson_vae.vae.ModelConfig` and :class:`~poisson_vae.training.TrainConfig` as a flag
(``n_latents`` -> ``--n-latents``); ``--recipe paper`` starts from the paper's settings for the
dataset, ``--config FILE`` (a JSON file of the same shape as a run's ``config.json``) overrides
the recipe, and flags override both. Errors are reported in one line, with what to do.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main"]

# Flags that may differ from the stored configuration when a run is resumed.
RESUMABLE = {
    "epochs",
    "accelerator",
    "devices",
    "num_nodes",
    "strategy",
    "progress",
    "cache_dir",
    "data_dir",
}


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str}


def _field_type(annotation: object) -> type:
    """The scalar type of a configuration field, annotated as a string such as ``'int | None'``."""
    return _SCALARS.get(str(annotation).split("|")[0].strip(), str)


def _add_config_flags(
    parser: argparse.ArgumentParser, config_classes: dict[str, type], skip: frozenset | set = frozenset()
) -> None:
    for section, kind in config_classes.items():
        group = parser.add_argument_group(f"{section} options")
        for item in dataclasses.fields(kind):
            if not item.metadata.get("cli", True) or item.name in skip:
                continue
            flag = "--" + item.name.replace("_", "-")
            default = item.default if item.default is not dataclasses.MISSING else None
            help_text = item.metadata.get("help", "")
            if default is not None:
                help_text += f" (default: {default})"
            kind_of_value = _field_type(item.type)
            if kind_of_value is bool:
                group.add_argument(
                    flag,
                    action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            else:
                group.add_argument(
                    flag,
                    type=kind_of_value,
                    default=argparse.SUPPRESS,
                    help=help_text,
                    metavar=item.name.upper(),
                )


def _version_text() -> str:
    """The package's and torch's versions, the devices, and the sampler each kind of device runs."""
    import torch

    from . import __version__
    from .distributions import default_backend

    devices = ["CPU"]
    if torch.cuda.is_available():
        devices.append(f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}")
    samplers = f"relaxed-Poisson sampler: {default_backend('cpu')} on the CPU"
    samplers += f", {default_backend('cuda')} on CUDA"
    return f"pvae {__version__} (torch {torch.__version__}; {', '.join(devices)})\n{samplers}"


class _VersionAction(argparse.Action):
    """``--version``, its text built only when asked for (querying CUDA devices is slow)."""

    def __init__(self, option_strings: list[str], dest: str, help: str | None = None) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        print(_version_text())
        parser.exit()


def _build_parser() -> argparse.ArgumentParser:
    from .training import DataConfig, TrainConfig
    from .vae import ModelConfig

    parser = argparse.ArgumentParser(
        prog="pvae", description="Poisson VAE: train sparse spike-count autoencoders."
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="show the versions, the devices and the sampler each device runs, and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train a VAE and write its run directory",
        description="Train a VAE; writes config.json, checkpoints/, logs/, model.safetensors, "
        "dictionary.png and metrics.json into --out.",
    )
    train.add_argument("--out", type=Path, required=True, help="run directory")
    train.add_argument("--config", type=Path, help="JSON configuration (as a run's config.json)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument(
        "--recipe",
        help="start from a named recipe's training options for the dataset: 'paper' (SPEC 2); "
        "--config and flags override it",
    )
    _add_config_flags(train, {"data": DataConfig, "model": ModelConfig, "train": TrainConfig})

    summary = commands.add_parser(
        "model-summary", help="layer table and trainable parameter count of a model"
    )
    summary.add_argument("--latent", default="poisson", help="latent family")
    summary.add_argument("--arch", default="lin|lin", help="networks as 'encoder|decoder'")
    summary.add_argument("--n-latents", type=int, default=512, help="number of latents K")
    summary.add_argument("--input-size", type=int, default=16, help="side of the square input")

    sample = commands.add_parser("sample", help="decode draws from a trained model's prior into a PNG")
    sample.add_argument("run", type=Path, help="run directory of a finished `pvae train`")
    sample.add_argument("--n", type=int, default=64, help="number of samples")
    sample.add_argument("--seed", type=int, default=0, help="seed of the prior draws")
    sample.add_argument("--out", type=Path, help="PNG to write (default: RUN/samples.png)")

    evaluate = commands.add_parser(
        "evaluate",
        help="metrics, figures, Gabor fits and geometry of a trained run into RUN/eval",
        description="Evaluate a finished run: writes RUN/eval/metrics.json, report.md and figures.",
    )
    evaluate.add_argument("run", type=Path, help="run directory of a finished `pvae train`")
    evaluate.add_argument("--seed", type=int, help="seed of hard samples and KNN draws (default: run's)")
    evaluate.add_argument(
        "--geometry", action=argparse.BooleanOptionalAction, default=True, help="KNN and shattering"
    )
    evaluate.add_argument(
        "--gabor", action=argparse.BooleanOptionalAction, default=True, help="Gabor fits of the atoms"
    )
    evaluate.add_argument(
        "--shattering-samples",
        type=int,
        help="fit the shattering classifiers on this many training samples (default: all)",
    )

    compare = commands.add_parser(
        "compare",
        help="paper-style tables over seeds and conditions of evaluated runs",
        description="Aggregate evaluated runs by condition: mean and 99 %% CI over seeds, paired "
        "t-tests (Benjamini-Hochberg), a rate-distortion plot; writes OUT/COMPARE.md.",
    )
    compare.add_argument("runs", type=Path, nargs="+", help="evaluated run directories")
    compare.add_argument("--out", type=Path, default=Path("compare"), help="output folder")
    compare.add_argument(
        "--unpaired", action="store_true", help="write the tables even when seed sets differ"
    )

    gap = commands.add_parser(
        "amortization-gap",
        help="sparse inference with a trained VAE's dictionary against its encoder",
        description="Run LCA / ISTA / FISTA with a VAE's linear decoder as the dictionary at several "
        "lambdas; writes RUN/amortization_gap/ (table, JSON, rate-distortion figure). --compare adds "
        "other evaluated runs (VAEs, sparse coders) to the table and figure.",
    )
    gap.add_argument("run", type=Path, help="run directory of a VAE with a linear decoder")
    gap.add_argument("--algorithm", default="lca", help="lca, ista or fista (default: lca)")
    gap.add_argument("--lam", default="0.1,0.3,1,3", help="comma-separated lambdas")
    gap.add_argument("--n-samples", type=int, default=2000, help="validation samples used")
    gap.add_argument("--n-iterations", type=int, default=900, help="maximum inference iterations")
    gap.add_argument("--out", type=Path, help="output folder (default: RUN/amortization_gap)")
    gap.add_argument(
        "--compare",
        type=Path,
        nargs="+",
        default=[],
        metavar="RUN",
        help="evaluated runs on the same data (pvae train or pvae sparse-coding train, then pvae "
        "evaluate) to draw beside the gap, one point each; give the VAE's RUN before this flag",
    )

    reproduce = commands.add_parser(
        "reproduce",
        help="run a suite of the paper's experiments and write REPORT.md",
        description="Run (or resume) the jobs of a suite through a process pool or submitit and "
        "write OUT/REPORT.md: the paper's tables with the published numbers beside ours, and a "
        "computed verdict on each claim. Finished jobs are skipped; failed ones are listed.",
    )
    reproduce.add_argument(
        "suite",
        help="natural16-zoo, natural16-rate-distortion, mnist-geometry, vanhateren16 or cifar16",
    )
    reproduce.add_argument("--scale", default="small", help="small (a laptop) or paper (default: small)")
    reproduce.add_argument("--out", type=Path, help="output folder (default: reproduce/SUITE-SCALE)")
    reproduce.add_argument(
        "--executor", default="local", help="local (process pool), slurm or submitit-local"
    )
    reproduce.add_argument(
        "--workers", type=int, default=2, help="parallel jobs of the local executor (default: 2)"
    )
    reproduce.add_argument("--partition", help="SLURM partition")
    reproduce.add_argument(
        "--gpus-per-job", type=int, default=0, help="GPUs per job; several run data-parallel (slurm)"
    )
    reproduce.add_argument("--cpus-per-job", type=int, default=2, help="CPUs per job (submitit)")
    reproduce.add_argument(
        "--timeout-min", type=int, default=24 * 60, help="time limit per job (submitit)"
    )
    reproduce.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    reproduce.add_argument(
        "--report-only", action="store_true", help="only rewrite REPORT.md from finished jobs"
    )
    reproduce.add_argument("--data-dir", help="folder of the source files the suite's data needs")
    reproduce.add_argument("--no-progress", action="store_true", help="no progress bar")

    sparse = commands.add_parser("sparse-coding", help="sparse-coding baselines (LCA, ISTA, FISTA)")
    sparse_commands = sparse.add_subparsers(dest="sparse_command", required=True, metavar="ACTION")
    sparse_train = sparse_commands.add_parser(
        "train",
        help="learn a dictionary by alternating sparse inference and dictionary updates",
        description="Learn a dictionary; writes config.json, checkpoints/, logs/, "
        "dictionary.safetensors, dictionary.png and metrics.json into --out.",
    )
    sparse_train.add_argument("--out", type=Path, required=True, help="run directory")
    sparse_train.add_argument("--resume", action="store_true", help="continue the run in --out")
    from .sparse_coding.training import SparseCodingConfig

    _add_config_flags(sparse_train, {"data": DataConfig, "sparse coding": SparseCodingConfig})

    data = commands.add_parser("data", help="list and prepare datasets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    listing = data_commands.add_parser(
        "list", help="every dataset, its source, licence and availability"
    )
    listing.add_argument("--data-dir", help="folder of source files to check availability against")
    download = data_commands.add_parser(
        "download", help="opt-in: fetch MNIST's files from the canonical mirrors, checksums verified"
    )
    download.add_argument("name", choices=["mnist"], help="dataset to download")
    download.add_argument("--data-dir", required=True, help="folder to download into")
    prepare = data_commands.add_parser("prepare", help="build a dataset and cache its arrays")
    prepare.add_argument("name", help="dataset name (see `pvae data list`) or npy:PATH")
    _add_config_flags(prepare, {"data": DataConfig}, skip={"data"})
    return parser


def _model_summary(args: argparse.Namespace) -> int:
    import torch

    from .vae import ModelConfig, build_vae

    size = args.input_size
    if size < 1:
        raise ValueError(f"--input-size must be a positive integer, got {size}")
    config = ModelConfig(
        latent=args.latent, arch=args.arch, n_latents=args.n_latents, input_shape=(1, size, size)
    )
    model = build_vae(config)
    # One row per module that owns parameters, with its output shape in one forward pass.
    rows: dict[str, list] = {}

    def record_shape(name: str):
        def hook(module: torch.nn.Module, inputs: tuple, output: object) -> None:
            rows[name][1] = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else "-"

        return hook

    hooks = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
        if own:
            rows[name] = [type(module).__name__, "-", own]
            hooks.append(module.register_forward_hook(record_shape(name)))
    with torch.no_grad():
        output = model(torch.zeros(2, 1, size, size), temperature=0.0, method="mc")
    for hook in hooks:
        hook.remove()
    print(f"{config.latent} {config.arch}, K = {config.n_latents}, input 1 x {size} x {size}")
    print(f"{'layer':<34} {'type':<18} {'output':<16} {'parameters':>12}")
    for name, (kind, shape, count) in rows.items():
        print(f"{name or '(model)':<34} {kind:<18} {shape!s:<16} {count:>12,}")
    print(f"output {tuple(output.reconstruction.shape[1:])}, code {tuple(output.code.mean.shape[1:])}")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"trainable parameters: {trainable:,}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import torch

    from .figures import save_sample_grid
    from .vae import load_model

    if args.n < 1:
        raise ValueError(f"--n must be a positive integer, got {args.n}")
    model = load_model(args.run)
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        images = model.decode(model.latent.prior_sample(args.n, generator=generator))
    path = save_sample_grid(images, args.out or args.run / "samples.png")
    print(f"wrote {path}")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from .evaluation import EVAL_DIR, evaluate_run

    if args.shattering_samples is not None and args.shattering_samples < 10:
        raise ValueError(f"--shattering-samples must be at least 10, got {args.shattering_samples}")
    metrics = evaluate_run(
        args.run,
        geometry=args.geometry,
        gabor=args.gabor,
        seed=args.seed,
        shattering_samples=args.shattering_samples,
    )
    shown = [key for key in ("nelbo", "mse_map", "lifetime_sparsity", "n_active") if key in metrics]
    print("validation: " + ", ".join(f"{key} {metrics[key]:.4g}" for key in shown))
    if metrics.get("gabor", {}).get("fraction_gabor") is not None:
        print(f"Gabor-like active atoms: {metrics['gabor']['fraction_gabor']:.2f}")
    if "knn" in metrics:
        print("KNN: " + ", ".join(f"N={n} {row['mean']:.3f}" for n, row in metrics["knn"].items()))
    print(f"wrote {args.run / EVAL_DIR}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare

    path = compare(args.runs, args.out, strict=not args.unpaired)
    print(f"wrote {path}")
    return 0


def _amortization_gap(args: argparse.Namespace) -> int:
    from .amortization import amortization_gap

    try:
        lams = tuple(float(value) for value in args.lam.split(","))
    except ValueError:
        raise ValueError(f"--lam {args.lam!r} must be comma-separated numbers, e.g. 0.1,0.3,1") from None
    rows = amortization_gap(
        args.run,
        args.algorithm,
        lams,
        args.n_samples,
        args.n_iterations,
        out=args.out,
        compare=args.compare,
    )
    for row in rows:
        # a compared run's label already names its own lambda
        lam = "" if row["lam"] is None or "run" in row else f" lambda {row['lam']:g}"
        print(
            f"{row['source']}{lam}: mse_map {row['mse_map']:.2f}, "
            f"lifetime sparsity {row['lifetime_sparsity']:.3f}"
        )
    print(f"wrote {args.out or args.run / 'amortization_gap'}")
    return 0


def _sparse_coding(args: argparse.Namespace) -> int:
    from .compare import read_json_object
    from .sparse_coding.training import (
        SparseCodingConfig,
        SparseCodingRun,
        threshold_refusal,
        train_sparse_coding,
    )
    from .training import DataConfig

    flags = {
        k: v for k, v in vars(args).items() if k not in ("command", "sparse_command", "out", "resume")
    }
    data_names = {f.name for f in dataclasses.fields(DataConfig)}
    document: dict[str, dict] = {"data": {}, "sparse_coding": {}}
    stored_path = args.out / "config.json"
    if args.resume and stored_path.is_file():
        document = read_json_object(stored_path)
        if "sparse_coding" not in document:
            raise ValueError(
                f"{args.out} holds a VAE run, not a sparse-coding run; choose another --out"
            )
        # options newer than the run take their defaults, as the run did
        document = SparseCodingRun(
            DataConfig(**document["data"]), SparseCodingConfig(**document["sparse_coding"])
        ).to_dict()
        _refuse_changed(flags, document, lambda key: "data" if key in data_names else "sparse_coding")
    for key, value in flags.items():
        document.setdefault("data" if key in data_names else "sparse_coding", {})[key] = value
    algorithm = document["sparse_coding"].get("algorithm", SparseCodingConfig.algorithm)
    if "threshold" in flags and algorithm != "lca":
        raise ValueError(threshold_refusal(algorithm))
    config = SparseCodingRun(
        DataConfig(**document["data"]), SparseCodingConfig(**document["sparse_coding"])
    )
    metrics = train_sparse_coding(config, args.out, resume=args.resume)
    shown = ("mse_map", "portion_zeros", "lifetime_sparsity", "n_active")
    print("validation: " + ", ".join(f"{key} {metrics[key]:.4g}" for key in shown))
    print(f"wrote {args.out}")
    return 0


def _data(args: argparse.Namespace) -> int:
    from .data import DATASETS, USER_ARRAYS, cache_dir, dataset_availability
    from .training import DataConfig

    if args.data_command == "list":
        for info in [*DATASETS.values(), USER_ARRAYS]:
            reason = info.availability(args.data_dir)
            status = "available" if reason is None else f"not available: {reason}"
            labels = "labels" if info.labels else "no labels"
            print(f"{info.name}  ({info.shape}; {info.size}; {labels})")
            print(f"    source:  {info.source}")
            print(f"    licence: {info.licence}")
            for line in info.details:
                print(f"      {line}")
            print(f"    {status}")
        return 0
    if args.data_command == "download":
        from .data.mnist import download_mnist

        folder = download_mnist(args.data_dir)
        print(f"downloaded and verified; use: pvae train --data mnist --data-dir {folder}")
        return 0
    flags = {
        key: value for key, value in vars(args).items() if key not in ("command", "data_command", "name")
    }
    config = DataConfig(data=args.name, **flags)
    reason = dataset_availability(config.data, config.data_dir)
    if reason is not None:
        raise FileNotFoundError(reason)
    splits = config.load()
    for key, array in splits.items():
        print(f"{key}: {array.shape} {array.dtype}")
    if not config.data.startswith("npy:"):
        print(f"cached in {cache_dir(config.cache_dir)}")
    return 0


def _section_of(name: str) -> str:
    from .training import DataConfig, TrainConfig
    from .vae import ModelConfig

    for section, kind in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        if name in {f.name for f in dataclasses.fields(kind)}:
            return section
    raise KeyError(name)


def _refuse_changed(flags: dict, document: dict, section_of: Callable[[str], str]) -> None:
    """Refuse flags that differ from the stored configuration of the run being resumed (only
    :data:`RESUMABLE` ones may change)."""
    from .training import resolve_source

    changed = sorted(
        key
        for key, value in flags.items()
        if key not in RESUMABLE
        and document.get(section_of(key), {}).get(key)
        != (resolve_source(value) if key == "data" else value)
    )
    if changed:
        listed = ", ".join("--" + key.replace("_", "-") for key in changed)
        raise ValueError(f"{listed} differ from the run being resumed; drop them or use a new --out")


def _run_config(args: argparse.Namespace):
    from .training import DataConfig, RunConfig
    from .vae import CONFIG_FILE

    flags = {
        key: value
        for key, value in vars(args).items()
        if key not in ("command", "out", "config", "resume", "recipe")
    }
    stored_path = args.out / CONFIG_FILE
    if args.resume and stored_path.is_file():
        for name, given in (("--recipe", args.recipe), ("--config", args.config)):
            if given is not None:
                raise ValueError(
                    f"{name} applies to a new run; the run being resumed keeps its "
                    f"{stored_path}: drop {name} or use a new --out"
                )
        document = RunConfig.load(stored_path).to_dict()
        _refuse_changed(flags, document, _section_of)
    elif args.config is not None:
        if not args.config.is_file():
            raise FileNotFoundError(f"--config {args.config} does not exist")
        document = RunConfig.load(args.config).to_dict()
    else:
        document = {}
    if args.recipe is not None:
        from .recipes import recipe

        data = flags.get("data", document.get("data", {}).get("data", DataConfig.data))
        from_file = json.loads(args.config.read_text()).get("train", {}) if args.config else {}
        for key, value in recipe(args.recipe, data).items():
            if key not in from_file:
                flags.setdefault(key, value)
    for key, value in flags.items():
        document.setdefault(_section_of(key), {})[key] = value
    return RunConfig.from_dict(document)


def _train(args: argparse.Namespace) -> int:
    from .training import CHECKPOINT, NonFiniteLossError, _is_launched_replica, train

    config = _run_config(args)
    try:
        metrics = train(config, args.out, resume=args.resume)
    except NonFiniteLossError as error:
        checkpoint = args.out / CHECKPOINT
        if checkpoint.is_file():
            advice = f"the last good checkpoint is {checkpoint}; lower --lr or --grad-clip and resume"
        else:
            advice = "no epoch finished; lower --lr or --grad-clip and start again"
        print(f"pvae: error: {error}; {advice}", file=sys.stderr)
        return 1
    if metrics is None:
        if (args.out / CHECKPOINT).is_file() and not _is_launched_replica():
            print(
                f"pvae: interrupted; continue with: pvae train --out {args.out} --resume",
                file=sys.stderr,
            )
            return 130
        return 0
    shown = ("nelbo", "sse", "kl", "mse_map", "portion_zeros", "lifetime_sparsity", "n_active")
    print("validation: " + ", ".join(f"{key} {metrics[key]:.4g}" for key in shown))
    print(f"wrote {args.out}")
    return 0


def _reproduce(args: argparse.Namespace, argv: list[str] | None) -> int:
    from .reproduce import reproduce

    if args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    options = {
        "workers": args.workers,
        "partition": args.partition,
        "gpus_per_job": args.gpus_per_job,
        "cpus_per_job": args.cpus_per_job,
        "timeout_min": args.timeout_min,
    }
    words = sys.argv[1:] if argv is None else argv
    report = reproduce(
        args.suite,
        args.scale,
        args.out,
        args.executor,
        options,
        retry_failed=args.retry_failed,
        report_only=args.report_only,
        data_dir=args.data_dir,
        progress=not args.no_progress,
        command="pvae " + " ".join(shlex.quote(word) for word in words),
    )
    print(f"wrote {report}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvae`` command."""
    parser = _build_parser()
    args = parser.parse_args(argv)
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    from .vae import CheckpointError

    try:
        if args.command == "train":
            return _train(args)
        if args.command == "data":
            return _data(args)
        if args.command == "model-summary":
            return _model_summary(args)
        if args.command == "sample":
            return _sample(args)
        if args.command == "evaluate":
            return _evaluate(args)
        if args.command == "compare":
            return _compare(args)
        if args.command == "amortization-gap":
            return _amortization_gap(args)
        if args.command == "sparse-coding":
            return _sparse_coding(args)
        if args.command == "reproduce":
            return _reproduce(args, argv)
    except (ValueError, OSError, CheckpointError, MisconfigurationException) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        print(f"pvae: error: {message}", file=sys.stderr)
        return 2
    parser.error(f"unknown command {args.command!r}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
