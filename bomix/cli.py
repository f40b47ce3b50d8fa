"""The `bomix` command line. Heavy imports happen inside the commands, so `bomix --help` is instant."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

DEMO_DOMAINS = ["books", "cc", "stack", "pes2o", "reddit"]


def _print_best(study, unit: str | None = None) -> None:
    """Print the best observed and the recommended trial; unit: the evaluator's (Evaluator.unit),
    printed after the best value, or None (no evaluator at hand) to print none."""
    best = study.best_trial
    if best is None:
        print("no completed trials yet")
        return
    at = "" if study.fidelities is None else f" at the target fidelity {study.target_fidelity!r}"
    in_unit = f" {unit}" if unit else ""
    print(f"best observed{at}: trial {best.number}, {study.objective.kind} loss {best.value:.4f}{in_unit}")
    for d, w in best.weights.items():
        print(f"  {d:<16} {w:.4f}")
    rec = study.recommend()
    if rec is None or rec.source == "best observed":
        return
    sd = "" if rec.sd is None else f" +- {rec.sd:.4f}"
    where = "" if rec.trial is None else f"trial {rec.trial}, "
    if study.fidelities is not None and rec.trial is not None:
        where = f"trial {rec.trial} (run at {study.fidelity_of(study.trials[rec.trial])!r}), "
    at = "" if study.fidelities is None else f" at {study.target_fidelity!r}"
    print(f"recommended ({rec.source}): {where}predicted {study.objective.kind} loss{at} {rec.value:.4f}{sd}")
    if rec.trial != best.number:
        for d, w in rec.weights.items():
            print(f"  {d:<16} {w:.4f}")
    from bomix.confidence import summary_line

    line = summary_line(study.which_wins(top=5), unit or "")
    if line:
        print(f"how sure: {line}")


def _fidelity_lines(study) -> list[str]:
    """One line per fidelity of a multi-fidelity study: cost, trials by state; [] single-fidelity."""
    from bomix.trial import TrialState

    lines = []
    for name, cost in (study.fidelities or {}).items():
        mine = [t for t in study.trials if study.fidelity_of(t) == name]
        counts = ", ".join(f"{sum(t.state is s for t in mine)} {s.value}" for s in TrialState)
        target = ", target" if name == study.target_fidelity else ""
        lines.append(f"  {name} (relative cost {cost:g}{target}): {counts}")
    if study.fidelities:
        lines.append(f"  compute spent (completed, failed and running trials): {study.compute_spent():g}")
    return lines


def _campaign(config, *, show_progress):
    """Create or resume the study `config` names, run it to its budget, print the best; returns
    (study, evaluator)."""
    import bomix
    from bomix.evaluators import get_evaluator
    from bomix.study import check_evaluator_domains

    params = {"seed": config.study.seed, **config.optimizer.params}
    optimizer = bomix.get_optimizer(config.optimizer.name, **params)
    evaluator = get_evaluator(config.evaluator.name, **config.evaluator.params)
    space = config.space.build()
    check_evaluator_domains(evaluator, space)  # before anything is written
    study = bomix.create_study(config.study.dir, space=space, optimizer=optimizer, objective=config.study.objective,
                               seed=config.study.seed, load_if_exists=True, pool=evaluator.pool,
                               fidelities=evaluator.fidelities, target_fidelity=evaluator.target_fidelity)
    config.write(study.directory / "config.json")
    before = study.n_finished
    progress = config.study.show_progress if show_progress is None else show_progress
    _setup_logging(progress)
    try:
        c = config.study
        study.optimize(evaluator, n_trials=c.trials, n_parallel=c.n_parallel, runner=c.runner, timeout=c.timeout,
                       retries=c.retries, max_failures=c.max_failures, show_progress=progress,
                       compute_budget=c.compute_budget)
        if config.study.replicate_top:
            table = study.replicate(evaluator, top=config.study.replicate_top, repeats=config.study.replicate_repeats,
                                    n_parallel=config.study.n_parallel, runner=config.study.runner,
                                    show_progress=progress)
            print("replicated top mixtures (value = first evaluation; luck = value - mean of all evaluations):")
            print(table[["number", "value", "mean", "sd", "n_evaluations", "luck"]].to_string(index=False,
                                                                                          float_format="%.4f"))
    except KeyboardInterrupt:
        print(f"\ninterrupted: {study.n_finished} trials are saved in {study.directory}; run the same command "
              "again to resume", file=sys.stderr)
        raise SystemExit(130) from None
    print(f"{study.n_finished - before} new trials, {study.n_finished} in total; study written to {study.directory}")
    _print_best(study, evaluator.unit)
    study.close()
    return study, evaluator


def _setup_logging(progress: bool | None) -> None:
    bar = sys.stderr.isatty() if progress is None else progress
    logging.basicConfig(level=logging.WARNING if bar else logging.INFO, format="bomix: %(message)s")
    for noisy in ("ax", "botorch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_run(args) -> None:
    from bomix.config import load_config

    _campaign(load_config(args.config, args.set or []), show_progress=args.progress)


def cmd_benchmark(args) -> None:
    from bomix.benchmark import load_benchmark_config, run_benchmark

    config = load_benchmark_config(args.config, args.set or [])
    logging.basicConfig(level=logging.WARNING, format="bomix: %(message)s")
    try:
        result = run_benchmark(config, args.output, n_workers=args.workers)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    if result.failed:
        raise SystemExit(1)


def cmd_demo(args) -> None:
    from bomix.config import load_config

    overrides = [f"study.dir={json.dumps(str(args.dir))}", f"study.n_trials={args.n_trials}",
                 f"study.seed={args.seed}", f"optimizer.name={json.dumps(args.optimizer)}",
                 f"space.domains={json.dumps(DEMO_DOMAINS)}",
                 'evaluator.params={name = "seedlike", noise_sd = 0.017, seed = 0}']
    config = load_config(None, overrides)
    print(f"demo: {args.n_trials} trials of {args.optimizer!r} on the built-in 'seedlike' landscape "
          "(5 domains, noise sd 0.017; an analytic stand-in for proxy trainings, no GPU or download)", flush=True)
    study, ev = _campaign(config, show_progress=args.progress)
    best, rec = study.best_trial, study.recommend()
    if best is not None:
        print(f"true (noise-free) losses, known because this is a test landscape: best observed "
              f"{ev.true_value(best.weights):.4f}, recommended {ev.true_value(rec.weights):.4f}; "
              f"landscape optimum {ev.optimal_value:.4f}, uniform mixture {ev.true_value([0.2] * 5):.4f}")


def cmd_status(args) -> None:
    import bomix
    from bomix.trial import TrialState

    if (Path(args.dir) / "benchmark.json").is_file():  # a benchmark: its studies, not one study's trials
        from bomix.benchmark import status_lines

        print("\n".join(status_lines(args.dir)))
        return
    study = bomix.load_study(args.dir)
    counts = {s.value: sum(t.state is s for t in study.trials) for s in TrialState}
    print(f"study {study.directory}: optimizer {study.optimizer.name}, objective {study.objective.kind}, "
          f"{len(study.space.domains)} domains")
    print("trials: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f"; {len(study.queued)} queued")
    if study.fidelities is not None:
        print("by fidelity:")
        print("\n".join(_fidelity_lines(study)))
    best = study.best_trial
    at = "" if study.fidelities is None else f" at the target fidelity {study.target_fidelity!r}"
    print(f"best so far{at}: " + ("none" if best is None else f"{best.value:.4f} (trial {best.number})"))


def cmd_best(args) -> None:
    import bomix

    study = bomix.load_study(args.dir)
    if args.json:
        best = study.best_trial
        out = None if best is None else {"trial": best.number, "value": best.value, "weights": best.weights,
                                         "losses": best.losses}
        if out is not None and study.fidelities is not None:  # single-fidelity output stays as it was
            out["fidelity"] = study.fidelity_of(best)
        print(json.dumps(out, indent=2))
    else:
        _print_best(study)


def cmd_export(args) -> None:
    import bomix

    out = bomix.load_study(args.dir).export(args.output)
    print(f"wrote {out / 'ratios.csv'}, {out / 'metrics.csv'} and {out / 'trials.csv'}")


def cmd_report(args) -> None:
    from bomix.report import report

    _setup_logging(True)  # warnings only: the report prints its own progress lines
    path = report(args.dirs, args.output)
    print(f"wrote {path} (self-contained), {path.with_suffix('.md')}, the tables as CSV and figures/ in {path.parent}")


def cmd_train(args) -> None:
    from bomix.train.__main__ import run

    code = run(args)  # the same code path as `python -m bomix.train`
    if code:
        raise SystemExit(code)


def _dataset_table(manifest: dict) -> str:
    tok = manifest["tokenizer"]
    lines = [f"tokenizer {tok['kind']}, vocabulary {manifest['vocab_size']:,}, {manifest['dtype']}, seed "
             f"{manifest['seed']}, bomix {manifest['bomix_version']}",
             f"{'domain':<16} {'train tokens':>14} {'val tokens':>12} {'documents':>10} {'val docs':>9} "
             f"{'files':>6} {'MB':>8}"]
    for name, c in manifest["domains"].items():
        lines.append(f"{name:<16} {c['train_tokens']:>14,} {c['val_tokens']:>12,} "
                     f"{c['train_documents'] + c['val_documents']:>10,} {c['val_documents']:>9,} {c['files']:>6,} "
                     f"{c['bytes'] / 1e6:>8.2f}" + ("  (validation only)" if c.get("val_only") else ""))
    return "\n".join(lines)


def cmd_data_build(args) -> None:
    from bomix.train.data import build_dataset

    try:
        manifest = build_dataset(args.source, args.output, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
                                 val_tokens=args.val_tokens, val_fraction=args.val_fraction,
                                 val_only=args.val_only or (), seed=args.seed,
                                 log=lambda line: print(line, flush=True))
    except ValueError as e:  # bomix.train raises plain ValueErrors (it knows nothing of bomix.errors)
        print(f"bomix: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"wrote {args.output}")
    print(_dataset_table(manifest))


def cmd_data_info(args) -> None:
    path = args.dir / "manifest.json"
    if not path.is_file():
        print(f"bomix: error: a dataset directory must hold manifest.json, got none in {str(args.dir)!r}",
              file=sys.stderr)
        raise SystemExit(2)
    print(_dataset_table(json.loads(path.read_text())))


def cmd_mixture_export(args) -> None:
    from bomix.integrations import mixture_from, render, write_mixture

    weights, what = mixture_from(args.source, trial=args.trial, which="best" if args.best else "recommended")
    if args.output is None:
        sys.stdout.write(render(weights, args.format, args.mapping))  # stdout stays pure: pipe it to a file
        print(f"bomix: {what}, as {args.format}", file=sys.stderr)
    else:
        write_mixture(weights, args.format, args.output, args.mapping)
        print(f"wrote {args.output}: {what}, as {args.format}")


def cmd_data_tokens(args) -> None:
    from bomix.integrations import count_tokens, space_snippet, write_tokens
    from bomix.integrations.space_config import write_text_atomic

    tokens = count_tokens(args.source, dtype=args.dtype)
    factor = 1.0 if args.repetition_factor is None else args.repetition_factor
    lines = [f"{'domain':<16} {'tokens':>16}" + (f" {'cap':>8}" if args.target_tokens else "")]
    for d, n in tokens.items():
        cap = f" {min(1.0, factor * n / args.target_tokens):>8.4f}" if args.target_tokens else ""
        lines.append(f"{d:<16} {n:>16,}{cap}")
    if args.target_tokens:
        lines.append(f"caps = min(1, {factor:g} x tokens / {args.target_tokens:,.0f}) (repetition_factor x tokens / "
                     "target_tokens)")
    if args.into is not None:
        write_tokens(args.into, tokens, target_tokens=args.target_tokens, repetition_factor=args.repetition_factor)
        print("\n".join(lines))
        print(f"wrote [space] tokens into {args.into}")
        return
    snippet = space_snippet(tokens, args.target_tokens, args.repetition_factor)
    if args.output is not None:
        write_text_atomic(args.output, snippet)
        print("\n".join(lines))
        print(f"wrote {args.output}")
    else:
        print("\n".join(lines), file=sys.stderr)  # stdout is the TOML snippet alone
        sys.stdout.write(snippet)


def build_parser() -> argparse.ArgumentParser:
    from bomix import __version__

    parser = argparse.ArgumentParser(prog="bomix", description="Bayesian optimisation of pretraining data mixtures.")
    parser.add_argument("--version", action="version", version=f"bomix {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="run (or resume) the study a TOML config describes")
    p.add_argument("config", type=Path, help="TOML config (see experiments/configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. study.n_trials=64")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("benchmark", help="run (or resume) every method x seed of a benchmark TOML into OUT")
    p.add_argument("config", type=Path, help="benchmark TOML (e.g. experiments/configs/bench_seedlike.toml)")
    p.add_argument("-o", "--output", type=Path, required=True, help="benchmark folder, created or resumed")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key, e.g. benchmark.seeds=3")
    p.add_argument("--workers", type=int, default=None, help="studies at once (default benchmark.n_workers)")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("demo", help="a demo campaign on a built-in test landscape (no GPU, no download)")
    p.add_argument("--dir", type=Path, default=Path("runs/demo"), help="study directory (default runs/demo)")
    p.add_argument("--n-trials", type=int, default=32)
    p.add_argument("--optimizer", default="bo", help="a registered optimizer (default bo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="progress bar")
    p.set_defaults(func=cmd_demo)

    status_help = ("trial counts by state and the best so far; of a benchmark directory, the studies finished "
                   "per method, the seeds every method finished and the time left")
    for name, func, text in (("status", cmd_status, status_help),
                             ("best", cmd_best, "the best observed mixture (and the recommended one)")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", type=Path, help="study directory" + (" (or benchmark directory)" if name == "status" else ""))
        if name == "best":
            p.add_argument("--json", action="store_true", help="machine-readable output")
        p.set_defaults(func=func)

    p = sub.add_parser("export", help="write ratios.csv + metrics.csv (olmix shape) and trials.csv")
    p.add_argument("dir", type=Path, help="study directory")
    p.add_argument("-o", "--output", type=Path, default=None, help="output folder (default DIR/export)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="tables, figures and one self-contained report.html comparing studies")
    p.add_argument("dirs", type=Path, nargs="+", metavar="DIR", help="benchmark directories or study directories")
    p.add_argument("-o", "--output", type=Path, required=True, help="report folder to write")
    p.set_defaults(func=cmd_report)

    from bomix.train.__main__ import add_arguments  # argparse only: bomix --help stays light

    p = sub.add_parser("train", help="train the built-in proxy GPT on one mixture (= python -m bomix.train)")
    add_arguments(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("data", help="build or describe a tokenised dataset for the built-in proxy trainer")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    p = data_sub.add_parser("build", help="tokenise SOURCE/<domain>/ (.txt, .jsonl, .parquet) into OUTPUT")
    p.add_argument("source", type=Path, help="folder with one subfolder of text per domain")
    p.add_argument("-o", "--output", type=Path, required=True, help="dataset directory to write")
    p.add_argument("--tokenizer", choices=["bpe", "bytes"], default="bpe",
                   help="train a byte-level BPE on the data (default) or use raw UTF-8 bytes (vocabulary 256)")
    p.add_argument("--vocab-size", type=int, default=8192, help="BPE vocabulary (default 8192)")
    p.add_argument("--val-tokens", type=int, default=None,
                   help="validation tokens per domain, whole documents (default: --val-fraction of each domain)")
    p.add_argument("--val-fraction", type=float, default=0.05, help="validation share per domain (default 0.05)")
    p.add_argument("--val-only", action="append", metavar="DOMAIN",
                   help="a domain used only for validation (a target set); repeatable")
    p.add_argument("--seed", type=int, default=0, help="seed of the document shuffle, hence the split (default 0)")
    p.set_defaults(func=cmd_data_build)
    p = data_sub.add_parser("info", help="print a dataset's manifest as a table")
    p.add_argument("dir", type=Path, help="dataset directory")
    p.set_defaults(func=cmd_data_info)
    p = data_sub.add_parser("tokens", help="token counts per domain from a mapping's data files or a bomix "
                                           "dataset, as [space] tokens (for caps)")
    p.add_argument("source", type=Path, help="a mapping file (domain -> Megatron prefixes, .npy or raw token files) "
                                             "or a bomix dataset directory")
    p.add_argument("--dtype", choices=["uint8", "uint16", "uint32", "int32", "int64"], default=None,
                   help="token dtype of raw token files (OLMo-core's .npy token files are raw; no header)")
    p.add_argument("--target-tokens", type=float, default=None, help="token budget of the run the mixture is for")
    p.add_argument("--repetition-factor", type=float, default=None, help="epochs allowed per domain (default 1)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--into", type=Path, default=None,
                       help="merge into this campaign config's [space], keeping everything else")
    where.add_argument("-o", "--output", type=Path, default=None, help="write the TOML snippet here (default stdout)")
    p.set_defaults(func=cmd_data_tokens)

    from bomix.integrations.formats import FORMATS  # standard library only: --help stays light

    p = sub.add_parser("mixture", help="a mixture in a trainer's own form (OLMo-core, Megatron, torchtitan, ...)")
    mixture_sub = p.add_subparsers(dest="mixture_command", required=True, metavar="ACTION")
    p = mixture_sub.add_parser("export", help="write a study's (or a JSON file's) mixture for a trainer")
    p.add_argument("source", type=Path, metavar="STUDY_OR_JSON",
                   help="a study directory (its recommended mixture) or a mixture JSON file ({domain: weight} or "
                        "a trial's mixture.json)")
    p.add_argument("--format", required=True, choices=FORMATS, help="the trainer's form")
    p.add_argument("--mapping", type=Path, default=None,
                   help="TOML file mapping each domain to its data (required by every trainer format)")
    pick = p.add_mutually_exclusive_group()
    pick.add_argument("--trial", type=int, default=None, help="export this trial's mixture instead")
    pick.add_argument("--best", action="store_true", help="the best observed mixture instead of the recommended one")
    p.add_argument("-o", "--output", type=Path, default=None, help="file to write (default stdout)")
    p.set_defaults(func=cmd_mixture_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from bomix.errors import BomixError

    try:
        args.func(args)
        sys.stdout.flush()
    except BomixError as e:
        print(f"bomix: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`bomix status DIR | head`): stop without a traceback
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
