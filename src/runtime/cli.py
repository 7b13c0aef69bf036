"""The `tines` command: pull a model, generate from the terminal, serve over HTTP."""

from __future__ import annotations

import argparse
import sys
import time

from .models.registry import DEFAULT_MODEL, PullError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tines", description="tines: structured generation runtime")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pull", help="fetch a known model into the user cache")
    p.add_argument("name", nargs="?", default=DEFAULT_MODEL)

    g = sub.add_parser("generate", help="answer one chat message, streaming to the terminal")
    g.add_argument("prompt")
    g.add_argument("--model", default=None, help="a path or known name (default: the default model)")
    g.add_argument("--system", default=None, help="a system message")
    g.add_argument("--raw", action="store_true", help="send the prompt as is, without the chat template")
    g.add_argument("--max-tokens", type=int, default=256)
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--weights", default=None, choices=("fp32", "bf16", "int8", "int4", "auto"),
                   help="weight format (default: the engine's)")
    g.add_argument("--compile", action="store_true",
                   help="compile the model's steps first (pays off on long prompts and answers)")
    g.add_argument("--stats", action="store_true", help="print load time and tokens/s to stderr")

    s = sub.add_parser("serve", help="serve the native and OpenAI-compatible HTTP APIs")
    from .server.args import add_serve_arguments  # noqa: PLC0415 (keeps `tines pull` light)

    add_serve_arguments(s)

    args = parser.parse_args(argv)
    try:
        if args.command == "pull":
            from .models.registry import pull

            print(pull(args.name))
            return 0
        if args.command == "generate":
            return _generate(args)
        from .server.args import check_port_free, check_serve_args

        check_serve_args(args)  # an empty --api-key or a bad limit stops here, before any load
        check_port_free(args.host, args.port)
        if args.replicas:
            from .replicas.app import serve_replicas

            return serve_replicas(args)
        from .server.app import serve

        return serve(args)
    except PullError as e:
        print(f"tines: {e}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError, NotADirectoryError, PermissionError) as e:
        print(f"tines: {e}", file=sys.stderr)  # bad flags and paths: a message, no traceback
        return 2
    except KeyboardInterrupt:  # Ctrl-C before serving began (a running server exits 0)
        print("tines: interrupted", file=sys.stderr)
        return 130


def _generate(args: argparse.Namespace) -> int:
    from .engine.engine import Engine
    from .sampling_params import SamplingParams

    t0 = time.perf_counter()
    engine = Engine(args.model, compile=args.compile,
                    **({"weights": args.weights} if args.weights else {}))
    load_s = time.perf_counter() - t0
    if args.raw:
        prompt = args.prompt
    else:
        messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
            {"role": "user", "content": args.prompt}]
        prompt = engine.chat_template.render(messages, add_generation_prompt=True)
    params = SamplingParams(max_new_tokens=args.max_tokens, temperature=args.temperature,
                            top_p=args.top_p, seed=args.seed)
    t1 = first = time.perf_counter()
    num_tokens = 0
    for delta in engine.stream(prompt, params):
        if delta.text:
            if not num_tokens:
                first = time.perf_counter()
            sys.stdout.write(delta.text)
            sys.stdout.flush()
            num_tokens += 1
        if delta.output is not None:
            num_tokens = delta.output.num_completion_tokens
    end = time.perf_counter()
    sys.stdout.write("\n")
    sys.stdout.flush()
    if args.stats:
        decode_tps = (num_tokens - 1) / (end - first) if num_tokens > 1 and end > first else 0.0
        print(f"load {load_s:.2f} s | first token {first - t1:.3f} s | {num_tokens} tokens | "
              f"decode {decode_tps:.1f} tok/s", file=sys.stderr)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
