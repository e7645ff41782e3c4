//! Placeholder: the oracle crate arrives with its own milestone (see the README's roadmap).
