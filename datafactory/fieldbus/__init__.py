"""Field-bus value codecs shared by the gateway (decoding), the simulator (encoding) and the CLI tools.
Core: imports nothing outside ``datafactory``; any service may import it.
"""
