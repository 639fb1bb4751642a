"""Ways in: the FastAGI server, the admin CLI, the HTTP metrics and health server."""
