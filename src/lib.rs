//! Test kit shared by tests/ and benches/.
