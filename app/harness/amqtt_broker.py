"""Run the pure-Python amqtt broker on 127.0.0.1:<port> until SIGTERM/SIGINT.

``python -m app.harness.amqtt_broker --port N`` — started by ``EmbeddedBroker`` as a child process so
it can be stopped or killed like a real broker. MQTT 3.1.1 only (see ``app.harness.broker``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from amqtt.broker import Broker


async def serve(host: str, port: int) -> None:
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        # Only anonymous auth: the default plugin set also logs every packet and publishes $SYS, which costs CPU.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await broker.start()
    await stop.wait()
    await broker.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description="amqtt MQTT 3.1.1 broker for datafactory's demo and tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
