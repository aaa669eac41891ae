//! Sluice's traffic-policy engine (stub until the policy issue lands).
