//! Shared code of the memguard benchmarks: the criterion benches live in `benches/`, the
//! end-to-end harness (`memguard-e2e`, kernel notification → callback latency and idle cost on
//! real cgroups) in [`e2e`].

pub mod e2e;
