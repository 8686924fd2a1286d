"""The journal: written while the run goes (Chaos Toolkit's format plus an ``mlchaos`` section), read back by
recovery and reports, with secrets redacted on the way out.
"""
