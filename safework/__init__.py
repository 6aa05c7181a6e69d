"""The product layer: the SafeLadder runner, evaluation and reports, inference-time
interventions (value-guided step search, human CoT editing), chat and analysis.

Layer 4: may import everything below it (`safework.infra`, `data`, `models`, `rl`,
`verifiers`). Nothing below may import `safework` except through `safework.infra`.
"""
