"""Round trips for `scripts/stack status`: a service is up when it does its job, not when its
port is open.

  probe.py kafka HOST:PORT TOPIC   produce one record to partition 0 and read it back
  probe.py smtp HOST PORT          EHLO, then NOOP answered with 250

Exits 0 on success; otherwise prints the reason on one line and exits 1.
"""

import smtplib
import sys
import uuid


def kafka(broker: str, topic: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    nonce = uuid.uuid4().hex.encode()
    producer = KafkaProducer(
        bootstrap_servers=broker, acks="all", request_timeout_ms=5000, max_block_ms=5000
    )
    try:
        sent = producer.send(topic, value=nonce, partition=0).get(timeout=5)
    finally:
        producer.close(timeout=2)
    consumer = KafkaConsumer(
        bootstrap_servers=broker, enable_auto_commit=False, consumer_timeout_ms=5000
    )
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        consumer.seek(partition, sent.offset)
        for message in consumer:
            if message.value == nonce:
                return
    finally:
        consumer.close()
    raise RuntimeError(f"record at offset {sent.offset} was acknowledged but not read back")


def smtp(host: str, port: str) -> None:
    with smtplib.SMTP(host, int(port), timeout=5) as server:
        server.ehlo("stack-status")
        code, _ = server.noop()
        if code != 250:
            raise RuntimeError(f"NOOP answered {code}")


def main() -> int:
    kind, *args = sys.argv[1:]
    try:
        {"kafka": kafka, "smtp": smtp}[kind](*args)
    except Exception as err:  # noqa: BLE001 - the reason is the output
        print(f"{type(err).__name__}: {err}".splitlines()[0][:200])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
