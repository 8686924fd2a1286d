"""Model-serving probes over the Open Inference Protocol (health, accuracy, latency, errors)."""
