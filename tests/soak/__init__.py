"""A randomized soak of the money path (issue 29): seeded storyboards and fault schedules,
real render subprocesses SIGKILLed and restarted, and an invariant checker.

``python -m tests.soak --runs N --seed S`` (``--quick`` for CI sizes) and
``python -m tests.soak --replay SEED``; see docs/reliability.md.
"""
