"""Use cases and the ports they call, in the domain's words."""
