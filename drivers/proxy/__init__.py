"""Network faults through a Toxiproxy-compatible API: the sandbox's own proxy or a real Toxiproxy."""
