"""Small helpers every room may use: the one atomic write, the state directory, /proc, programs on PATH, HTTP
checks, waiting for a condition, certificates.
"""
