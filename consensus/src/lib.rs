//! Placeholder: the consensus crate arrives with its own milestone (see the README's roadmap).
