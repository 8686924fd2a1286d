"""What mlchaos knows about monitoring itself: the ML-serving alert rules it ships (and their promtool tests) and
the webhook receiver that proves a notification went out.
"""
