"""The edge gateway: reads OPC-UA servers and MQTT devices, normalises, batches and publishes samples to the
platform broker with a store-and-forward buffer, so nothing is lost while the broker is unreachable.

Start it with ``datafactory gateway run --config plant.yaml``; see ``docs/gateway.md``.
"""
