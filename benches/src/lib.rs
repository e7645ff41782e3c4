//! Benchmarks live in `benches/`; see RESULTS.md for the figures and how to reproduce them.
