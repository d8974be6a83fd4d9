"""The edge gateway: reads OPC-UA servers and MQTT devices, normalises, batches, buffers and publishes samples.
A service: imports only the core (``datafactory``); composed by ``app`` (``datafactory gateway``).

Samples go to the platform broker through a store-and-forward buffer, so nothing is lost while the broker is away.

Start it with ``datafactory gateway run --config plant.yaml``; see ``docs/gateway.md``.
"""
