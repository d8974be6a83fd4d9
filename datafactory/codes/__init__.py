"""Chinese statistical and registration code systems used by plants and the bureau."""
