"""The solver: learning-rate schedules and optimizers, from plain values.

Shared by training and by the config's one door; it knows nothing of the
experiment message.
"""
