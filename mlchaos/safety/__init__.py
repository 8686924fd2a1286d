"""The guarantees: change records (what a fault changed), blast-radius bounds, the run context drivers see, guards,
the run registry and the emergency stop, the guardian, undo from records (recovery and the safety net) and the
TTL watchdog.
"""
