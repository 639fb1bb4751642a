"""One module per verb group of the ``callflow`` command."""
