"""Field-bus value codecs shared by the gateway (decoding), the simulator (encoding) and the CLI tools."""
