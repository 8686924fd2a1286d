"""Telemetry outages: the service keeps serving, but its monitoring goes blind."""
