"""Alertmanager probes: active alerts and delivered notifications."""
