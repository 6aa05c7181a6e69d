"""RL: everything that updates weights. SFT and RL objectives, group-relative
advantages, the on-device sampler, rollouts, the jitted sharded train step, the
trainer loop and the search-agent rollout.

Layer 2: may import `safework.infra`, `data`, `models`. Never `verifiers`: the
trainer receives a reward function (`RewardFn`) built elsewhere.
"""
