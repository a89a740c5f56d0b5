//! Shared helpers for the memguard benchmarks (see `benches/`).
