"""One verifier process for the cross-process measurements (`bench.verify` and the
propagation and quota tests): `python -m bench.verify_process BOOTSTRAP KEY_EVENTS_TOPIC
RENDER_COUNTS_TOPIC [--no-wait]`.

It starts a `KeyVerifier` (its own follower and render-count sharing), prints
`{"ready_ms": ...}` once ready (with `--no-wait`: `{"started": true}` at once), then
answers JSON commands read from stdin, one a line, with JSON lines on stdout:

- `{"watch": secret, "until": verdict, "tag": t}`: answers `{"watching": t}` at once, then
  verifies the secret every millisecond (on a thread) until its verdict is `until` and
  answers `{"seen": t, "at": time.time()}` (a clock shared by processes of one machine);
- `{"renders": secret, "n": n, "interval_s": s}`: n renders, one every s seconds;
  answers `{"admitted": k}`;
- `{"probe": secret}`: `{"ready": bool, "verdict": v | null, "not_ready": message | null}`.

`VerifierProcess(*args)` starts one and talks to it (`send`, `next`, `close`).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from streams.client.key_follower import NotReady
from streams.client.verifier import KeyVerifier

_out = threading.Lock()


def say(obj: dict[str, Any]) -> None:
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def watch(verifier: KeyVerifier, secret: str, until: str, tag: Any) -> None:
    while True:
        try:
            if verifier.verify(secret).verdict.value == until:
                say({"seen": tag, "at": time.time()})
                return
        except NotReady:
            pass
        time.sleep(0.001)


def renders(verifier: KeyVerifier, secret: str, n: int, interval_s: float) -> None:
    admitted = 0
    next_at = time.monotonic()
    for _ in range(n):
        quota = verifier.verify(secret, render=True).quota
        admitted += quota is not None and quota.admitted
        next_at += interval_s
        time.sleep(max(0.0, next_at - time.monotonic()))
    say({"admitted": admitted})


def main(argv: list[str]) -> None:
    bootstrap, key_events, render_counts = argv[:3]
    started = time.perf_counter()
    verifier = KeyVerifier.connect(bootstrap, key_events, render_counts, client_id="bench-verify")
    if "--no-wait" in argv:
        say({"started": True})
    else:
        verifier.wait_ready(60)
        say({"ready_ms": (time.perf_counter() - started) * 1000})
    for line in sys.stdin:
        command = json.loads(line)
        if "watch" in command:
            say({"watching": command["tag"]})
            threading.Thread(
                target=watch,
                args=(verifier, command["watch"], command["until"], command["tag"]),
                daemon=True,
            ).start()
        elif "renders" in command:
            threading.Thread(
                target=renders,
                args=(verifier, command["renders"], command["n"], command["interval_s"]),
                daemon=True,
            ).start()
        elif "probe" in command:
            try:
                verdict: str | None = verifier.verify(command["probe"]).verdict.value
                error = None
            except NotReady as exc:
                verdict, error = None, str(exc)
            say({"ready": verifier.ready, "verdict": verdict, "not_ready": error})


class VerifierProcess:
    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYPULSE_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.verify_process", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(json.loads(line))

    def send(self, command: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def next(self, timeout: float = 30.0) -> dict[str, Any]:
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer from the verifier process in {timeout} s") from None

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


if __name__ == "__main__":
    main(sys.argv[1:])
