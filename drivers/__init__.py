"""Bundled mlchaos drivers: plain keyword-argument functions used as python providers."""
