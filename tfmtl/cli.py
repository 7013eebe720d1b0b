"""The ``tfmtl`` command line."""

from __future__ import annotations

import argparse
import sys


def _demo(args: argparse.Namespace) -> int:
    from tfmtl.demo import run_demo

    result = run_demo(
        rows=args.rows,
        epochs=args.epochs,
        batch_size=args.batch_size,
        export_dir=args.export_dir,
        task_relatedness=args.task_relatedness,
        seed=args.seed,
    )
    return 0 if result.serving_matches else 1


def _lifecycle(args: argparse.Namespace) -> int:
    from tfmtl.training import run

    action = {"train": run.train_from_config, "evaluate": run.evaluate_from_config, "export": run.export_from_config}
    action[args.command](args.config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tfmtl", description="Multi-task recommendation models on TensorFlow.")
    parser.add_argument("--version", action="store_true", help="print the tfmtl version and exit")
    commands = parser.add_subparsers(dest="command")
    demo = commands.add_parser(
        "demo", help="train an MMoE on built-in synthetic data, evaluate, export, and serve the export"
    )
    demo.add_argument("--rows", type=int, default=100_000, help="synthetic impressions (default 100000)")
    demo.add_argument("--epochs", type=int, default=2)
    demo.add_argument("--batch-size", type=int, default=512)
    demo.add_argument("--export-dir", default="export/demo", help="model base path (default export/demo)")
    demo.add_argument("--task-relatedness", type=float, default=0.7, help="0..1, see tfmtl.data.synthetic_recsys")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(handler=_demo)
    for command, text in (
        ("train", "train from a TOML config (files, schema, tasks, architecture, optimizer, balancer); resumes"),
        ("evaluate", "evaluate the config's trained model on its validation files"),
        ("export", "export the config's trained model for TF Serving"),
    ):
        sub = commands.add_parser(command, help=text)
        sub.add_argument("config", help="run config (.toml); see examples/train.toml")
        sub.set_defaults(handler=_lifecycle)
    serve = commands.add_parser(
        "serve", help="development server with TF Serving's gRPC/REST APIs (loopback; not for production)"
    )
    from tfmtl.serving.server import add_arguments, run

    add_arguments(serve)
    serve.set_defaults(handler=run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from tfmtl import __version__

        print(__version__)
        return 0
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
