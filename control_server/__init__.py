"""hostplane's control server: inventory, templates, transports, runner, output, lab."""

__version__ = "0.1.0"
