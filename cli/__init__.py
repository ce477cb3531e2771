"""The ``diffc`` command-line interface: parses, calls the Python API, prints."""
