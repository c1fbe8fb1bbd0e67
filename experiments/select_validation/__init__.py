"""A first validation of ``layerscope attribute`` on Shakespeare passages."""
