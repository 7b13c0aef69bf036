"""The same kind of program against a remote tines server, natively (`RemoteBackend`) and
through its OpenAI-compatible API (`OpenAICompatible`).

    python examples/remote_client.py                         # starts `tines serve` itself
    python examples/remote_client.py http://127.0.0.1:30000  # uses a running server
"""

import socket
import subprocess
import sys
import time

import httpx

import tines


@tines.program
def ask(s, question):
    s += tines.user(question)
    s += tines.assistant("The answer is " + tines.gen("number", dtype=int, max_tokens=6))
    s += tines.user("Is the number even or odd?")
    s += tines.assistant(tines.select("parity", ["even", "odd"]))


@tines.program
def date(s):
    s += "A date in ISO format: " + tines.gen("date", regex=r"20[0-9]{2}-[01][0-9]-[0-3][0-9]")


def start_server() -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "tines.runtime.cli", "serve", "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600  # compiling at start-up is slow on a busy machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"`tines serve` exited with {proc.returncode}")
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    proc.kill()
    raise SystemExit("`tines serve` did not become healthy in 600 s")


if __name__ == "__main__":
    proc, url = (None, sys.argv[1]) if len(sys.argv) > 1 else start_server()
    try:
        native = tines.RemoteBackend(url)
        state = ask.run("What is 10 plus 5?", backend=native, temperature=0)
        print(f"native:  number={state['number']} parity={state['parity']} "
              f"(cached prompt tokens: {state.get_meta_info('parity').cached_tokens})")
        openai = tines.OpenAICompatible(url + "/v1")
        state = date.run(backend=openai, temperature=0)
        print(f"openai:  date={state['date']}")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)
