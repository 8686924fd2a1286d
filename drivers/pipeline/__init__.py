"""Training-pipeline faults: the sandbox's training pipeline stops pushing to the Pushgateway."""
