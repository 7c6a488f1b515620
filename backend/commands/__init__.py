"""Sub-commands of the ``labelcast`` CLI (see :mod:`backend.cli`)."""
