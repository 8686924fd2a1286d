"""The run: phases in Chaos Toolkit's order, signals, the plan (dry run) and admission, verdicts and exit codes,
budgets, and what a person reads while and after a run goes.
"""
