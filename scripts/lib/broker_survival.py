"""Does a Kafka-protocol broker survive what a laptop or a VM does to it? (#17)

For each storage engine given, starts Tansu on a port of its own, keeps a librdkafka producer
(the relay's client, acks=all; idempotent as the relay had it, or plain with one request in
flight) sending numbered records, and in every round:

  1. freezes the broker (SIGSTOP) for --freeze seconds, resumes it (SIGCONT), and checks the
     producer gets new records acknowledged within --settle seconds;
  2. kills it (SIGKILL), starts it again on the same data, and checks the same.

At the end it reads the topic back and counts acknowledged records that are missing. A round
is survived when the producer makes progress after both faults. Prints one JSON line per engine.

  python broker_survival.py --tansu BIN [--rounds 3] [--producer idempotent|plain|both] ENGINE_URL...

(the venv needs confluent-kafka: `pip install confluent-kafka`)

ENGINE_URL is Tansu's --storage-engine, with {dir} replaced by a fresh temporary folder
(e.g. sqlite://{dir}/tansu.db, postgres://u:p@127.0.0.1/tansu_eval).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import threading
import time

from confluent_kafka import Consumer, Producer, TopicPartition

TOPIC = "survival"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, binary: str, engine: str, port: int, log: str):
        self.binary, self.engine, self.port, self.log = binary, engine, port, log
        self.proc = None

    def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, "broker", "--cluster-id", "survival", "--listener-url", url,
                 "--advertised-listener-url", url, "--storage-engine", self.engine],
                cwd="/", stdout=log, stderr=log)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("broker did not listen")

    def signal(self, sig) -> None:
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        self.proc.wait()

    def create_topic(self) -> None:
        subprocess.run([self.binary, "topic", "create", "--broker", f"tcp://127.0.0.1:{self.port}",
                        "--partitions", "1", TOPIC], cwd="/", capture_output=True, timeout=30)

    def panicked(self) -> int:
        with open(self.log, "rb") as log:
            return log.read().count(b"panicked")


class Load:
    """Numbered records, sent as fast as they are acknowledged (a few hundred in flight)."""

    def __init__(self, port: int, idempotent: bool):
        settings = {
            "bootstrap.servers": f"127.0.0.1:{port}", "acks": "all",
            "message.timeout.ms": 30000, "socket.timeout.ms": 10000, "log_level": 0}
        if idempotent:
            settings["enable.idempotence"] = True
        else:
            # Retries cannot reorder (one request in flight); a retried batch may be stored twice,
            # which consumers that deduplicate on event id absorb.
            settings.update({"enable.idempotence": False, "max.in.flight.requests.per.connection": 1})
        self.producer = Producer(settings)
        self.acked: set[int] = set()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            def done(err, msg, n=n):
                if err is None:
                    with self.lock:
                        self.acked.add(n)
            try:
                self.producer.produce(TOPIC, value=str(n).encode(), partition=0, on_delivery=done)
                n += 1
            except BufferError:
                pass
            self.producer.poll(0.01 if n % 50 == 0 else 0)
            if n % 50 == 0:
                time.sleep(0.02)

    def count(self) -> int:
        with self.lock:
            return len(self.acked)

    def progresses(self, within: float) -> bool:
        start, deadline = self.count(), time.time() + within
        while time.time() < deadline:
            if self.count() > start + 20:
                return True
            time.sleep(0.5)
        return False


def read_back(port: int) -> set[int]:
    consumer = Consumer({"bootstrap.servers": f"127.0.0.1:{port}", "group.id": f"read-{time.time()}",
                         "enable.auto.commit": False, "log_level": 0})
    consumer.assign([TopicPartition(TOPIC, 0, 0)])
    seen, idle = set(), time.time()
    while time.time() - idle < 10:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        seen.add(int(msg.value()))
        idle = time.time()
    consumer.close()
    return seen


def trial(binary: str, engine_url: str, rounds: int, freeze: float, settle: float,
          idempotent: bool) -> dict:
    workdir = tempfile.mkdtemp(prefix="survival-")
    engine = engine_url.replace("{dir}", workdir)
    port = free_port()
    broker = Broker(binary, engine, port, os.path.join(workdir, "broker.log"))
    broker.start()
    broker.create_topic()
    load = Load(port, idempotent)
    load.thread.start()
    result = {"engine": engine_url, "idempotent_producer": idempotent, "rounds": rounds, "after_freeze_ok": 0, "after_kill_ok": 0}
    if not load.progresses(settle):
        result["error"] = "no progress before any fault"
    else:
        for _ in range(rounds):
            broker.signal(signal.SIGSTOP)
            time.sleep(freeze)
            broker.signal(signal.SIGCONT)
            result["after_freeze_ok"] += load.progresses(settle)
            broker.kill()
            broker.start()
            result["after_kill_ok"] += load.progresses(settle)
    load.stop.set()
    load.thread.join()
    load.producer.flush(10)
    acked = set(load.acked)
    seen = read_back(port)
    result.update({
        "acknowledged": len(acked),
        "acknowledged_missing": len(acked - seen),
        "broker_panics": broker.panicked(),
        "log": broker.log,
    })
    broker.kill()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tansu", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--freeze", type=float, default=30)
    parser.add_argument("--settle", type=float, default=40)
    parser.add_argument("--producer", choices=["idempotent", "plain", "both"], default="both")
    parser.add_argument("engines", nargs="+")
    args = parser.parse_args()
    kinds = {"idempotent": [True], "plain": [False], "both": [True, False]}[args.producer]
    for engine in args.engines:
        for idempotent in kinds:
            result = trial(args.tansu, engine, args.rounds, args.freeze, args.settle, idempotent)
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
