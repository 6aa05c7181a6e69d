"""Verifiers: rule verifiers, generative-judge verifiers (safety, value, knowledge,
helpfulness), label-routed reward recipes, the principled value model, and judge
training.

Layer 3: may import `safework.infra`, `data`, `models`, `rl`.
"""
