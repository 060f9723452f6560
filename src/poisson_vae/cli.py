"""The ``pvae`` command line.

Each command is a small parser function next to its handler (``set_defaults(handler=...)``).
``pvae train`` exposes every field of :class:`~poisson_vae.config.DataConfig`,
:class:`~poisson_vae.config.ModelConfig` and :class:`~poisson_vae.config.TrainConfig` as a flag
(``n_latents`` -> ``--n-latents``); ``--recipe paper`` starts from the paper's settings for the
dataset, ``--config FILE`` (a JSON file of the same shape as a run's ``config.json``) overrides
the recipe, and flags override both (:meth:`~poisson_vae.config.RunConfig.resolve`). Errors are
reported in one line, with what to do; errors about fields name their flags (:func:`main` is the
one place that translates).

Importing this module and building its parser loads neither Lightning nor numba.
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["build_parser", "flag", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse, its errors in one line like every other refusal of ``pvae``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"pvae: error: {message} (see {self.prog} --help)\n")


def _path(text: str) -> Path:
    """A command-line path; the empty string (which would mean the current folder) is refused."""
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path names no file or folder")
    return Path(text)


def _run_help() -> str:
    from .pretrained import PRETRAINED

    return (
        "run directory of a finished `pvae train`, or pretrained:NAME for a model shipped with "
        f"the package ({', '.join(PRETRAINED)})"
    )


def _run_path(text: str) -> Path:
    """A run folder, or ``pretrained:NAME`` for a model shipped with the package."""
    from .pretrained import PREFIX, pretrained_path

    if text.startswith(PREFIX):
        try:
            return pretrained_path(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
    return _path(text)


def _default_out(run: Path) -> Path:
    """Where a command writes beside a run: the run itself, or ``./NAME`` for a shipped model
    (the package's own folder is never written into)."""
    from .pretrained import pretrained_name

    name = pretrained_name(run)
    return run if name is None else Path(name)


def _list_of(convert: Callable[[str], Any], what: str) -> Callable[[str], list]:
    """An argparse type for a list flag: comma-separated values in one word; with
    ``action="extend"`` the flag may also repeat (``--lams 0.1,0.3`` or ``--lams 0.1 --lams 0.3``),
    and never takes a positional argument for its own."""

    def parse(text: str) -> list:
        items = [item.strip() for item in text.split(",") if item.strip()]
        if not items:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}")
        try:
            return [convert(item) for item in items]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None

    return parse


def _list_flag(
    parser: argparse.ArgumentParser,
    *names: str,
    convert: Callable[[str], Any],
    what: str,
    metavar: str,
    help: str,
    **options: Any,
) -> None:
    """A flag taking a comma-separated list, which may also repeat (see ``_list_of``)."""
    parser.add_argument(
        *names, type=_list_of(convert, what), action="extend", metavar=metavar, help=help, **options
    )


def flag(name: str) -> str:
    """The command-line flag of a field: ``n_latents`` -> ``--n-latents``."""
    return "--" + name.replace("_", "-")


_SCALARS = {"int": int, "float": float, "bool": bool, "str": str}


def _field_type(annotation: object) -> type:
    """The scalar type of a configuration field, annotated as a string such as ``'int | None'``."""
    return _SCALARS.get(str(annotation).split("|")[0].strip(), str)


def _add_config_flags(
    parser: argparse.ArgumentParser, config_classes: dict[str, type], skip: frozenset | set = frozenset()
) -> None:
    """One flag per field of each configuration class, in a group per section; a flag that is not
    given is absent from the parsed namespace (so that only given flags override)."""
    for section, kind in config_classes.items():
        group = parser.add_argument_group(f"{section} options")
        for item in dataclasses.fields(kind):
            if not item.metadata.get("cli", True) or item.name in skip:
                continue
            default = item.default if item.default is not dataclasses.MISSING else None
            help_text = item.metadata.get("help", "")
            if default is not None:
                help_text += f" (default: {default})"
            kind_of_value = _field_type(item.type)
            if kind_of_value is bool:
                group.add_argument(
                    flag(item.name),
                    action=argparse.BooleanOptionalAction,
                    default=argparse.SUPPRESS,
                    help=help_text,
                )
            else:
                check = item.metadata.get("check")
                choices = check.choices if check is not None else None
                group.add_argument(
                    flag(item.name),
                    type=kind_of_value,
                    default=argparse.SUPPRESS,
                    help=help_text,
                    choices=choices,
                    metavar="{" + ",".join(choices) + "}" if choices else item.name.upper(),
                )


def _given(args: argparse.Namespace, *exclude: str) -> dict[str, Any]:
    """The configuration fields given as flags (the namespace minus the command's own options)."""
    own = {"command", "handler", "run", "out", "resume", "config", "recipe", "sparse_command", *exclude}
    return {key: value for key, value in vars(args).items() if key not in own}


# --- pvae --version --------------------------------------------------------------------------
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


# --- pvae train ------------------------------------------------------------------------------
def _add_train(commands: argparse._SubParsersAction) -> None:
    from .config import DataConfig, ModelConfig, TrainConfig

    parser = commands.add_parser(
        "train",
        help="train a VAE and write its run directory",
        description="Train a VAE; writes config.json, checkpoints/, logs/, model.safetensors, "
        "dictionary.png and metrics.json into --out.",
    )
    parser.add_argument("--out", type=_path, required=True, help="run directory")
    parser.add_argument("--config", type=_path, help="JSON configuration (as a run's config.json)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out")
    parser.add_argument(
        "--recipe",
        help="start from a named recipe's training options for the dataset: 'paper' (the paper's "
        "settings) or 'iterative' (the iP-VAE's); --config and flags override it",
    )
    _add_config_flags(parser, {"data": DataConfig, "model": ModelConfig, "train": TrainConfig})
    parser.set_defaults(handler=_train)


def _run_config(args: argparse.Namespace):
    """The configuration of ``pvae train``: the resumed run's, or --config, --recipe and flags."""
    from .config import DataConfig, RunConfig, load_config
    from .errors import ConfigError, braces
    from .recipes import recipe
    from .runs import Run

    run = Run(args.out)
    overrides = _given(args)
    stored = run.stored_config(RunConfig) if args.resume and run.started else None
    base = None
    if args.config is not None:
        if not args.config.is_file():
            what = "is a folder, not a JSON file" if args.config.is_dir() else "does not exist"
            raise ConfigError(f"{{0}} {braces(str(args.config))} {what}", "config")
        load_config(args.config, RunConfig)  # the file alone is valid (errors name the file)
        base = _read_document(args.config)
        args.from_file = {name for section in base.values() for name in section}
    from_recipe = None
    if args.recipe is not None:
        data = overrides.get("data", (base or {}).get("data", {}).get("data", DataConfig.data))
        from_recipe = recipe(args.recipe, data)
        for name in (base or {}).get("train", {}):  # a --config file overrides the recipe
            from_recipe.pop(name, None)
    return RunConfig.resolve(
        overrides,
        stored=None if stored is None else stored.to_dict(),
        base=base,
        recipe=from_recipe,
    )


def _train(args: argparse.Namespace) -> int:
    from .runs import Run
    from .training import NonFiniteLossError, train

    run = Run(args.out)
    config = _run_config(args)
    try:
        metrics = train(config, args.out, resume=args.resume)
    except NonFiniteLossError as error:
        if run.checkpoint.is_file():
            advice = (
                f"the last good checkpoint is {run.checkpoint}; lower --lr or --grad-clip and resume"
            )
        else:
            advice = "no epoch finished; lower --lr or --grad-clip and start again"
        print(f"pvae: error: {error}; {advice}", file=sys.stderr)
        return 1
    if metrics is None:
        if run.checkpoint.is_file() and not run.is_replica():
            print(
                f"pvae: interrupted; continue with: pvae train --out {args.out} --resume",
                file=sys.stderr,
            )
            return 130
        return 0
    shown = ("nelbo", "sse", "kl", "mse_map", "portion_zeros", "lifetime_sparsity", "n_active")
    if config.model.inference == "iterative":
        shown = ("nelbo", "kl", "mse_map", "r2_mean", "r2_map", "portion_zeros", "distance")
    print("validation: " + ", ".join(f"{key} {metrics[key]:.4g}" for key in shown))
    print(f"wrote {args.out}")
    return 0


def _read_document(path: Path) -> dict:
    """The sections of a ``--config`` file as given (so that its unset fields stay unset)."""
    from .errors import ConfigError
    from .files import read_json

    return read_json(path, ConfigError)


# --- pvae model-summary ----------------------------------------------------------------------
def _add_model_summary(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "model-summary", help="layer table and trainable parameter count of a model"
    )
    parser.add_argument("--latent", default="poisson", help="latent family")
    parser.add_argument("--arch", default="lin|lin", help="networks as 'encoder|decoder'")
    parser.add_argument("--n-latents", type=int, default=512, help="number of latents K")
    parser.add_argument("--input-size", type=int, default=16, help="side of the square input")
    parser.set_defaults(handler=_model_summary)


def _model_summary(args: argparse.Namespace) -> int:
    import torch

    from .config import ModelConfig
    from .errors import ConfigError
    from .vae import build_vae

    size = args.input_size
    if size < 1:
        raise ConfigError(f"{{0}} must be a positive integer, got {size}", "input_size")
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


# --- pvae sample -----------------------------------------------------------------------------
def _add_sample(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sample",
        help="decode draws from a trained model's prior into OUT/samples.png",
        description="Decode draws from a trained model's prior into a grid, OUT/samples.png.",
    )
    parser.add_argument("run", type=_run_path, help=_run_help())
    parser.add_argument(
        "--n-samples", "--n", type=int, default=64, help="number of samples (default: 64)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the prior draws (default: 0)")
    parser.add_argument(
        "--out", type=_path, help="output folder (default: RUN; ./NAME for pretrained:NAME)"
    )
    parser.set_defaults(handler=_sample)


def _sample(args: argparse.Namespace) -> int:
    import math

    import torch

    from .config import SEED, check_memory
    from .errors import ConfigError
    from .figures import save_sample_grid
    from .runs import Run, check_output_path
    from .vae import load_model

    if args.n_samples < 1:
        raise ConfigError(f"{{0}} must be a positive integer, got {args.n_samples}", "n_samples")
    SEED("seed", args.seed)
    folder = _default_out(Run(args.run).directory) if args.out is None else args.out
    out = check_output_path(folder / Run.SAMPLES)
    model = load_model(args.run)
    pixels = math.prod(model.config.input_shape)
    # the prior draws, their images, and the grid (float64) they are tiled into
    needed = args.n_samples * (4 * model.config.n_latents + 4 * pixels + 8 * 2 * pixels)
    check_memory(needed, "cpu", f"a grid of {args.n_samples:,} samples", "n_samples")
    generator = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        images = model.decode(model.latent.prior_sample(args.n_samples, generator=generator))
    path = save_sample_grid(images, out)
    print(f"wrote {path}")
    return 0


# --- pvae evaluate ---------------------------------------------------------------------------
def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "evaluate",
        help="metrics, figures, Gabor fits and geometry of a trained run into RUN/eval",
        description="Evaluate a finished run: writes RUN/eval/metrics.json, report.md and figures.",
    )
    parser.add_argument("run", type=_run_path, help=_run_help())
    parser.add_argument("--seed", type=int, help="seed of hard samples and KNN draws (default: run's)")
    parser.add_argument(
        "--geometry", action=argparse.BooleanOptionalAction, default=True, help="KNN and shattering"
    )
    parser.add_argument(
        "--gabor", action=argparse.BooleanOptionalAction, default=True, help="Gabor fits of the atoms"
    )
    parser.add_argument(
        "--shattering-samples",
        type=int,
        help="fit the shattering classifiers on this many training samples (default: all)",
    )
    parser.add_argument(
        "--n-steps",
        type=int,
        default=1000,
        help="an iterative VAE's steps of inference (default: 1000, the release's)",
    )
    parser.add_argument(
        "--probe-samples",
        type=int,
        default=10_000,
        help="an iterative VAE on labelled data: fit the linear probe of its firing rates on this "
        "many training samples (default: 10,000; 0: all, as the release)",
    )
    parser.add_argument(
        "--out",
        type=_path,
        help="output folder (default: RUN/eval, which pvae compare reads; ./NAME/eval for "
        "pretrained:NAME)",
    )
    parser.set_defaults(handler=_evaluate)


def _evaluate(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .evaluation import evaluate_run
    from .runs import Run

    if args.shattering_samples is not None and args.shattering_samples < 10:
        raise ConfigError(
            f"{{0}} must be at least 10, got {args.shattering_samples}", "shattering_samples"
        )
    if args.n_steps < 1:
        raise ConfigError(f"{{0}} must be at least 1, got {args.n_steps}", "n_steps")
    if args.probe_samples < 0:
        raise ConfigError(f"{{0}} must be 0 (all) or more, got {args.probe_samples}", "probe_samples")
    folder = _default_out(args.run)
    if args.out is None and folder != args.run:  # a shipped model: ./NAME/eval
        args.out = folder / "eval"
    metrics = evaluate_run(
        args.run,
        geometry=args.geometry,
        gabor=args.gabor,
        seed=args.seed,
        shattering_samples=args.shattering_samples,
        out=args.out,
        n_steps=args.n_steps,
        probe_samples=args.probe_samples or None,
    )
    shown = ["nelbo", "mse_map", "lifetime_sparsity", "n_active"]
    if "convergence" in metrics:  # an iterative VAE
        shown = ["nelbo", "mse_map", "r2_mean", "r2_map", "portion_zeros", "distance"]
    shown = [key for key in shown if key in metrics]
    print("validation: " + ", ".join(f"{key} {metrics[key]:.4g}" for key in shown))
    if metrics.get("gabor", {}).get("fraction_gabor") is not None:
        print(f"Gabor-like active atoms: {metrics['gabor']['fraction_gabor']:.2f}")
    if "knn" in metrics:
        print("KNN: " + ", ".join(f"N={n} {row['mean']:.3f}" for n, row in metrics["knn"].items()))
    print(f"wrote {args.out or Run(args.run).eval_dir}")
    return 0


# --- pvae compare ----------------------------------------------------------------------------
def _add_compare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "compare",
        help="paper-style tables over seeds and conditions of evaluated runs",
        description="Aggregate evaluated runs by condition: mean and 99 % CI over seeds, paired "
        "t-tests (Benjamini-Hochberg), a rate-distortion plot; writes OUT/COMPARE.md.",
    )
    parser.add_argument("runs", type=_path, nargs="+", help="evaluated run directories")
    parser.add_argument("--out", type=_path, default=Path("compare"), help="output folder")
    parser.add_argument(
        "--unpaired", action="store_true", help="write the tables even when seed sets differ"
    )
    parser.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from .compare import compare

    path = compare(args.runs, args.out, unpaired=args.unpaired)
    print(f"wrote {path}")
    return 0


# --- pvae amortization-gap -------------------------------------------------------------------
def _add_amortization_gap(commands: argparse._SubParsersAction) -> None:
    from .sparse_coding import ALGORITHMS

    parser = commands.add_parser(
        "amortization-gap",
        help="sparse inference with a trained VAE's dictionary against its encoder",
        description="Run LCA / ISTA / FISTA with a VAE's linear decoder as the dictionary at several "
        "lambdas; writes RUN/amortization_gap/ (table, JSON, rate-distortion figure). --compare adds "
        "other evaluated runs (VAEs, sparse coders) to the table and figure.",
    )
    parser.add_argument("run", type=_path, help="run directory of a VAE with a linear decoder")
    parser.add_argument(
        "--algorithm", default="lca", choices=ALGORITHMS, help="inference (default: lca)"
    )
    _list_flag(
        parser,
        "--lams",
        "--lam",
        convert=float,
        what="numbers",
        metavar="LAM,...",
        help="sparsity weights, comma-separated or repeated (default: 0.1,0.3,1,3)",
    )
    parser.add_argument(
        "--n-samples", type=int, default=2000, help="validation samples used (default: 2000)"
    )
    parser.add_argument(
        "--n-iterations", type=int, default=900, help="maximum inference iterations (default: 900)"
    )
    parser.add_argument("--out", type=_path, help="output folder (default: RUN/amortization_gap)")
    _list_flag(
        parser,
        "--compare",
        convert=Path,
        what="run folders",
        default=[],
        metavar="RUN,...",
        help="evaluated runs on the same data (pvae train or pvae sparse-coding train, then pvae "
        "evaluate) to draw beside the gap, one point each; comma-separated or repeated",
    )
    parser.set_defaults(handler=_amortization_gap)


def _amortization_gap(args: argparse.Namespace) -> int:
    from .amortization import amortization_gap

    lams = tuple(args.lams or (0.1, 0.3, 1.0, 3.0))
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


# --- pvae reproduce --------------------------------------------------------------------------
def _add_reproduce(commands: argparse._SubParsersAction) -> None:
    from .reproduce.runner import EXECUTORS
    from .reproduce.suites import SCALES, SUITES

    parser = commands.add_parser(
        "reproduce",
        help="run a suite of the paper's experiments and write REPORT.md",
        description="Run (or resume) the jobs of a suite through a process pool or submitit and "
        "write OUT/REPORT.md: the paper's tables with the published numbers beside ours, and a "
        "computed verdict on each claim. Finished jobs are skipped; failed ones are listed. "
        "Ctrl+C stops the sweep; the next invocation resumes its unfinished jobs.",
    )
    parser.add_argument("suite", choices=SUITES, help="the suite")
    parser.add_argument(
        "--scale",
        default="small",
        choices=SCALES,
        help="small (a laptop), medium (hours on a CPU; mnist-geometry) or paper (default: small)",
    )
    parser.add_argument("--out", type=_path, help="output folder (default: reproduce/SUITE-SCALE)")
    parser.add_argument(
        "--executor",
        default="local",
        choices=EXECUTORS,
        help="local (a process pool), slurm or submitit-local (default: local)",
    )
    parser.add_argument(
        "--workers",
        type=_workers,
        default="auto",
        help="parallel jobs of the local executor; auto (the default): every job of a seed at "
        "once on a CUDA machine (they share the GPU), else 2",
    )
    parser.add_argument("--partition", help="SLURM partition")
    parser.add_argument(
        "--gpus-per-job", type=int, default=0, help="GPUs per job; several run data-parallel (slurm)"
    )
    parser.add_argument("--cpus-per-job", type=int, default=2, help="CPUs per job (submitit)")
    parser.add_argument("--timeout-min", type=int, default=24 * 60, help="time limit per job (submitit)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed jobs again")
    parser.add_argument(
        "--report-only", action="store_true", help="only rewrite REPORT.md from finished jobs"
    )
    parser.add_argument("--data-dir", help="folder of the source files the suite's data needs")
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="show a progress bar (default: on)",
    )
    parser.set_defaults(handler=_reproduce)


def _workers(text: str) -> int | str:
    """``--workers``: a count, or ``auto`` (its range is checked with the other executor options)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer or 'auto', got {text!r}") from None


def _reproduce(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    from .reproduce import reproduce

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
        progress=args.progress,
        command="pvae " + " ".join(shlex.quote(word) for word in words),
    )
    print(f"wrote {report}")
    return 0


# --- pvae sparse-coding ----------------------------------------------------------------------
def _add_sparse_coding(commands: argparse._SubParsersAction) -> None:
    from .config import DataConfig, SparseCodingConfig

    parser = commands.add_parser("sparse-coding", help="sparse-coding baselines (LCA, ISTA, FISTA)")
    actions = parser.add_subparsers(dest="sparse_command", required=True, metavar="ACTION")
    train = actions.add_parser(
        "train",
        help="learn a dictionary by alternating sparse inference and dictionary updates",
        description="Learn a dictionary; writes config.json, checkpoints/, logs/, "
        "dictionary.safetensors, dictionary.png and metrics.json into --out.",
    )
    train.add_argument("--out", type=_path, required=True, help="run directory")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    _add_config_flags(train, {"data": DataConfig, "sparse coding": SparseCodingConfig})
    train.set_defaults(handler=_sparse_coding_train)


def _sparse_coding_train(args: argparse.Namespace) -> int:
    from .config import SparseCodingRunConfig, threshold_refusal
    from .runs import Run
    from .sparse_coding.training import train_sparse_coding

    run = Run(args.out)
    stored = run.stored_config(SparseCodingRunConfig) if args.resume and run.started else None
    config = SparseCodingRunConfig.resolve(
        _given(args), stored=None if stored is None else stored.to_dict()
    )
    if "threshold" in _given(args) and config.sparse_coding.algorithm != "lca":
        raise threshold_refusal(config.sparse_coding.algorithm)  # given, even if soft: a mistake
    metrics = train_sparse_coding(config, args.out, resume=args.resume)
    shown = ("mse_map", "portion_zeros", "lifetime_sparsity", "n_active")
    print("validation: " + ", ".join(f"{key} {metrics[key]:.4g}" for key in shown))
    print(f"wrote {args.out}")
    return 0


# --- pvae data -------------------------------------------------------------------------------
def _add_data(commands: argparse._SubParsersAction) -> None:
    from .config import DataConfig

    parser = commands.add_parser("data", help="list and prepare datasets")
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="every dataset, its source, licence and availability")
    listing.add_argument("--data-dir", help="folder of source files to check availability against")
    listing.set_defaults(handler=_data_list)
    download = actions.add_parser(
        "download", help="opt-in: fetch MNIST's files from the canonical mirrors, checksums verified"
    )
    download.add_argument("name", choices=["mnist"], help="dataset to download")
    download.add_argument("--data-dir", required=True, help="folder to download into")
    download.set_defaults(handler=_data_download)
    prepare = actions.add_parser("prepare", help="build a dataset and cache its arrays")
    prepare.add_argument("name", help="dataset name (see `pvae data list`) or npy:PATH")
    _add_config_flags(prepare, {"data": DataConfig}, skip={"data"})
    prepare.set_defaults(handler=_data_prepare)


def _data_list(args: argparse.Namespace) -> int:
    from .data import DATASETS, USER_ARRAYS

    for info in [*DATASETS.values(), USER_ARRAYS]:
        reason = info.availability(args.data_dir)
        status = "available" if reason is None else f"not available: {_message(reason)}"
        labels = "labels" if info.labels else "no labels"
        print(f"{info.name}  ({info.shape}; {info.size}; {labels})")
        print(f"    source:  {info.source}")
        print(f"    licence: {info.licence}")
        for line in info.details:
            print(f"      {line}")
        print(f"    {status}")
    return 0


def _data_download(args: argparse.Namespace) -> int:
    from .data.mnist import download_mnist

    folder = download_mnist(args.data_dir)
    print(f"downloaded and verified; use: pvae train --data mnist --data-dir {folder}")
    return 0


def _data_prepare(args: argparse.Namespace) -> int:
    from .config import DataConfig
    from .data import cache_dir, dataset_availability

    config = DataConfig(data=args.name, **_given(args, "data_command", "name"))
    reason = dataset_availability(config.data, config.data_dir)
    if reason is not None:
        raise reason
    splits = config.load()
    for key, array in splits.items():
        print(f"{key}: {array.shape} {array.dtype}")
    if not config.data.startswith("npy:"):
        print(f"cached in {cache_dir(config.cache_dir)}")
    return 0


# --- pvae gradients -------------------------------------------------------------------------
def _add_gradients(commands: argparse._SubParsersAction) -> None:
    from .gradient_study import STUDY_ESTIMATORS, STUDY_RATES, STUDY_TEMPERATURES

    parser = commands.add_parser(
        "gradients",
        help="measure Poisson gradient estimators against the exact gradient",
        description="The gradient-quality study: for each estimator, constant rate and temperature, "
        "N gradients of a linear decoder's expected squared error with respect to the log-rates, "
        "against the exact gradient: bias, variance, SNR, cosine, Hessian-weighted bias and noise "
        "energies, W1 of the relaxed samples to the Poisson law, time. Writes OUT/cells.jsonl, "
        "OUT/REPORT.md and heatmaps; resumes from OUT/cells.jsonl.",
    )
    parser.add_argument("--out", type=_path, default=Path("gradients"), help="output folder")
    for name, convert, what, metavar, default in (
        ("--estimators", str, "estimator names", "NAME,...", ", ".join(STUDY_ESTIMATORS)),
        ("--rates", float, "numbers", "RATE,...", ",".join(f"{r:g}" for r in STUDY_RATES)),
        ("--temperatures", float, "numbers", "T,...", ",".join(f"{t:g}" for t in STUDY_TEMPERATURES)),
    ):
        _list_flag(
            parser,
            name,
            convert=convert,
            what=what,
            metavar=metavar,
            help=f"{name[2:]}, comma-separated or repeated (default: {default})",
        )
    parser.add_argument("--n-samples", type=int, default=100, help="gradients per cell (default: 100)")
    parser.add_argument("--rows", type=int, default=8, help="batch rows B (default: 8)")
    parser.add_argument(
        "--latents", type=int, default=64, help="latents K of a random dictionary (default: 64)"
    )
    parser.add_argument(
        "--dictionary",
        choices=("random", "natural16-pvae"),
        default="random",
        help="random unit-norm atoms and Gaussian targets, or the shipped P-VAE's decoder with "
        "natural16 patches (default: random)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(handler=_gradients)


def _gradients(args: argparse.Namespace) -> int:
    from .errors import ConfigError
    from .gradient_study import STUDY_ESTIMATORS, STUDY_RATES, STUDY_TEMPERATURES, run_study

    estimators = args.estimators or list(STUDY_ESTIMATORS)
    unknown = [name for name in estimators if name not in STUDY_ESTIMATORS]
    if unknown:
        raise ConfigError(
            f"{{0}}: unknown {', '.join(unknown)}; choose from {', '.join(STUDY_ESTIMATORS)}",
            "estimators",
        )
    for name, low in (("n_samples", 2), ("rows", 1), ("latents", 1)):
        if getattr(args, name) < low:
            raise ConfigError(f"{{0}} must be at least {low}, got {getattr(args, name)}", name)
    rates = args.rates or list(STUDY_RATES)
    temperatures = args.temperatures or list(STUDY_TEMPERATURES)
    if min(rates) <= 0 or min(temperatures) <= 0:
        raise ConfigError("{0} and {1} must be > 0", "rates", "temperatures")
    run_study(
        args.out,
        estimators,
        rates,
        temperatures,
        n_samples=args.n_samples,
        rows=args.rows,
        latents=args.latents,
        dictionary=args.dictionary,
        seed=args.seed,
        progress=print,
    )
    print(f"wrote {args.out / 'REPORT.md'}")
    return 0


# --- pvae doctor ----------------------------------------------------------------------------
def _add_doctor(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "doctor",
        help="check this installation: versions, devices, and the sampler on each device",
        description="Print the versions and devices, and compare the relaxed-Poisson sampler each "
        "device runs with the pure-torch walk (a statistical check of a fraction of a second). "
        "Exits with 1 if a sampler disagrees.",
    )
    parser.set_defaults(handler=_doctor)


def _doctor(args: argparse.Namespace) -> int:
    import torch

    from .distributions import sampler_self_check

    print(_version_text())
    devices = ["cpu", *(f"cuda:{index}" for index in range(torch.cuda.device_count()))]
    healthy = True
    for device in devices:
        check = sampler_self_check(device)
        verdict = "agrees with" if check["ok"] else "DISAGREES with"
        print(
            f"{device}: the {check['backend']} sampler {verdict} the torch walk (largest "
            f"difference {check['worst']:.1f} standard errors; {check['seconds'] * 1000:.0f} ms)"
        )
        healthy &= check["ok"]
    return 0 if healthy else 1


# --- the parser and the entry point ----------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The ``pvae`` parser (building it imports neither Lightning nor numba)."""
    parser = _Parser(
        prog="pvae",
        description="Poisson VAE: train sparse spike-count autoencoders.",
        epilog="Exit codes: 0 done; 1 training diverged, or pvae doctor found a faulty sampler; "
        "2 bad input (one line says what and how to fix it); 130 interrupted (the same command "
        "with --resume, or pvae reproduce again, continues).",
    )
    parser.add_argument(
        "--version",
        action=_VersionAction,
        help="show the versions, the devices and the sampler each device runs, and exit",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (
        _add_train,
        _add_model_summary,
        _add_sample,
        _add_evaluate,
        _add_compare,
        _add_amortization_gap,
        _add_reproduce,
        _add_sparse_coding,
        _add_data,
        _add_gradients,
        _add_doctor,
    ):
        add(commands)
    return parser


def _message(error: BaseException, args: argparse.Namespace | None = None) -> str:
    """The first line of an error; fields named by their flags, or as ``section.field`` where
    the value came from a configuration file."""
    from .errors import FieldError

    if isinstance(error, FieldError):
        given = _given(args) if args is not None else {}
        from_file = getattr(args, "from_file", set())

        def namer(section: str | None, name: str) -> str:
            if section is not None and name in from_file and name not in given:
                return f"{section}.{name}"
            return flag(name)

        text = error.render(namer)
    else:
        text = str(error)
    return text.splitlines()[0] if text else type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pvae`` command."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, --version, and argparse's refusals (already printed)
        return stop.code if isinstance(stop.code, int) else 0
    handler: Callable[..., int] = args.handler
    try:
        return handler(args, argv) if handler is _reproduce else handler(args)
    except KeyboardInterrupt as error:  # Ctrl+C outside training (which stops by itself)
        print(f"pvae: {error or 'interrupted'}", file=sys.stderr)
        return 130
    except Exception as error:
        if not _refused(error):
            raise
        print(f"pvae: error: {_message(error, args)}", file=sys.stderr)
        return 2


def _refused(error: Exception) -> bool:
    """Whether ``error`` is bad input (reported in one line) rather than a bug (a traceback)."""
    from .errors import CheckpointError, FieldError, MissingExtraError

    if isinstance(error, (FieldError, ValueError, OSError, CheckpointError, MissingExtraError)):
        return True
    if "lightning" in sys.modules:  # Lightning's own refusals of a configuration
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        return isinstance(error, MisconfigurationException)
    return False


if __name__ == "__main__":
    sys.exit(main())
