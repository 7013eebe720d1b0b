"""The ``tfmtl`` command line.

Parsing imports nothing heavy: TensorFlow loads only when a command runs, so
``tfmtl --help`` answers at once.
"""

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

    if args.command == "train":
        run.train_from_config(args.config, warm_start=args.warm_start)
        return 0
    action = {"evaluate": run.evaluate_from_config, "export": run.export_from_config}
    action[args.command](args.config)
    return 0


def _serve(args: argparse.Namespace) -> int:
    from tfmtl.serving.online.server import run

    return run(args)


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
        if command == "train":
            sub.add_argument(
                "--warm-start", metavar="PREVIOUS", default=None,
                help="the next version of PREVIOUS (a run's output.dir, its model.keras, or an exported version "
                     "folder): grow its vocabularies "
                     "on the config's training files, start from its weights, train, save, and export the next "
                     "version to output.export_dir when the config gives one",
            )
        sub.set_defaults(handler=_lifecycle)
    serve = commands.add_parser(
        "serve", help="development server with TF Serving's gRPC/REST APIs (loopback; not for production)"
    )
    serve.add_argument("--model_name", help="name clients use (with --model_base_path)")
    serve.add_argument("--model_base_path", help="folder holding integer version folders")
    serve.add_argument("--model_config_file", help="text ModelServerConfig (as tensorflow_model_server takes)")
    serve.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500; 0 = any free port)")
    serve.add_argument("--rest_api_port", type=int, default=None, help="REST port (default: REST off; 0 = any)")
    serve.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--max_seconds", type=float, default=None, help="stop by itself after this long")
    serve.add_argument("--file_system_poll_wait_seconds", type=float, default=1.0,
                       help="seconds between scans for new and removed versions (default 1, as TF Serving; 0: none)")
    serve.add_argument("--allow_version_labels_for_unavailable_models", action="store_true",
                       help="accept version labels whose version is not loaded (as TF Serving's flag)")
    serve.add_argument("--max_num_load_retries", type=int, default=5,
                       help="retries of a version that failed to load (default 5, as TF Serving)")
    serve.add_argument("--load_retry_interval_micros", type=int, default=60_000_000,
                       help="microseconds between those retries (default 60 s, as TF Serving)")
    serve.set_defaults(handler=_serve)
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
