//! What a checker found: every violation is counted, the first few are kept in words.
//!
//! Owns: the record and its bound. Never: judges anything itself.

/// Violations kept per run; the first ones are the interesting ones.
pub const VIOLATIONS_KEPT_MAX: usize = 8;

#[derive(Clone, Debug, Default)]
pub struct Violations {
    kept: Vec<String>,
    count: usize,
}

impl Violations {
    pub fn add(&mut self, text: String) {
        self.count += 1;
        if self.kept.len() < VIOLATIONS_KEPT_MAX {
            self.kept.push(text);
        }
        debug_assert!(self.kept.len() <= self.count);
    }

    /// The first [`VIOLATIONS_KEPT_MAX`] violations.
    pub fn kept(&self) -> &[String] {
        &self.kept
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

/// A checker that keeps its findings in a [`Violations`] record.
pub trait Judge {
    fn record(&self) -> &Violations;

    fn record_mut(&mut self) -> &mut Violations;

    fn violation(&mut self, text: String) {
        self.record_mut().add(text);
    }

    fn violations(&self) -> &[String] {
        self.record().kept()
    }

    fn violation_count(&self) -> usize {
        self.record().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_violation_counts_and_the_first_ones_are_kept() {
        let mut v = Violations::default();
        for i in 0..VIOLATIONS_KEPT_MAX + 3 {
            v.add(format!("v{i}"));
        }
        assert_eq!(v.count(), VIOLATIONS_KEPT_MAX + 3);
        assert_eq!(v.kept().len(), VIOLATIONS_KEPT_MAX);
        assert_eq!(v.kept()[0], "v0");
    }
}
