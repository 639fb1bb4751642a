"""The FastAGI protocol layer and its routes."""
