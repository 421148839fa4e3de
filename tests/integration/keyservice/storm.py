"""One API process of the create storm: `python -m tests.integration.keyservice.storm
BOOTSTRAP TOPIC ACCOUNT CREATES THREADS OUT`.

Runs its own key service (follower, decider, publisher) and sends CREATES key creates for
ACCOUNT from THREADS threads (alternately live and test), writing one JSON line per
answer to OUT as soon as it has it (after a line on stdin, so that every process starts
at once): {"ok": key_id, "type": t} or {"error": code}.
"""

from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import orjson

from schemas.keys import KeyType
from streams.keyservice.commands import CommandRefused, CreateKey
from streams.keyservice.service import Unavailable, start_key_service


def main(argv: list[str]) -> int:
    bootstrap, topic, account, creates, threads, out_path = argv
    lock = threading.Lock()
    with start_key_service(bootstrap, topic, client_id="storm") as service:
        out = open(out_path, "ab", buffering=0)  # noqa: SIM115 - closed below

        def one(i: int) -> None:
            key_type = KeyType.LIVE if i % 2 else KeyType.TEST
            try:
                outcome = service.execute(CreateKey(account, f"storm {i}", key_type))
                line = {"ok": outcome.decision.key_id, "type": key_type.value}
            except CommandRefused as refused:
                line = {"error": refused.code}
            except Unavailable:
                line = {"error": "unavailable"}
            with lock:
                out.write(orjson.dumps(line) + b"\n")

        print("ready", flush=True)
        sys.stdin.readline()  # "go": every process starts at once
        with ThreadPoolExecutor(int(threads)) as pool:
            list(pool.map(one, range(int(creates))))
        out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
