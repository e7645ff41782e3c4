//! The links between the nodes of a run: which of them a partition cuts, and the order
//! messages arrive in on each.
//!
//! Owns: the partition in force and each link's latest arrival. Never: draws latencies or
//! decides losses (each simulator's network model does, with the seed's generator).

/// The links between `nodes` nodes, all whole at first.
pub struct Links {
    nodes: usize,
    /// Latest arrival per (from, to) link.
    link_last_ms: Vec<u64>,
    /// `Some(groups)`: node i reaches only the nodes with the same group number.
    groups: Option<Vec<u8>>,
}

impl Links {
    pub fn new(nodes: usize) -> Links {
        Links {
            nodes,
            link_last_ms: vec![0; nodes * nodes],
            groups: None,
        }
    }

    pub fn set_partition(&mut self, groups: Option<Vec<u8>>) {
        if let Some(groups) = &groups {
            assert_eq!(groups.len(), self.nodes);
        }
        self.groups = groups;
    }

    /// Whether the partition in force keeps `from` from reaching `to`.
    pub fn cut(&self, from: usize, to: usize) -> bool {
        self.groups
            .as_ref()
            .is_some_and(|groups| groups.get(from) != groups.get(to))
    }

    /// When a message due at `at_ms` arrives if it may not overtake an earlier one on the
    /// link from `from` to `to` (as on a TCP connection); it becomes the link's latest.
    pub fn in_order(&mut self, from: usize, to: usize, at_ms: u64) -> u64 {
        let link = from * self.nodes + to;
        let at = at_ms.max(self.link_last_ms[link]);
        self.link_last_ms[link] = at;
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_order_and_a_partition_cuts_across_groups_only() {
        let mut links = Links::new(3);
        assert_eq!(links.in_order(0, 1, 50), 50);
        assert_eq!(links.in_order(0, 1, 20), 50);
        assert_eq!(links.in_order(1, 0, 20), 20);
        assert!(!links.cut(0, 2));
        links.set_partition(Some(vec![0, 0, 1]));
        assert!(links.cut(0, 2) && links.cut(2, 1));
        assert!(!links.cut(1, 0));
        links.set_partition(None);
        assert!(!links.cut(0, 2));
    }
}
