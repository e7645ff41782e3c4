//! Parameters: the oracle-wide [`OracleConfig`] and each feed's [`FeedParams`], and their
//! validation. A rejected value comes back as a [`ParamError`] naming the field, the value
//! and the rule it breaks. Parameters never change after a feed is added: a feed with other
//! windows or rates is a new feed.

use serde::{Deserialize, Serialize};

use crate::types::{Amount, FeedId};
use crate::{
    BPS_MAX, FEED_DECIMALS_MAX, UNBONDING_BLOCKS_MAX, WINDOW_BLOCKS_MAX, schedule::RoundSchedule,
    types::Height,
};

/// Rules shared by every feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleConfig {
    /// Blocks an unstaked amount waits, still open to penalties, before it is released.
    /// At least the round length of every feed (checked when a feed is added), so that an
    /// operator cannot commit, unstake and be gone before the round that judges it ends.
    pub unbonding_blocks: u64,
    /// Bonded stake an operator needs in a feed; also the least a stake may leave behind.
    /// At least 1, so every eligible operator has a positive weight.
    pub min_operator_stake: Amount,
}

/// One feed. See the crate documentation for what each rate does.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedParams {
    pub id: FeedId,
    /// Where the decimal point goes in this feed's prices; at most [`FEED_DECIMALS_MAX`].
    pub decimals: u8,
    /// Blocks of the commit phase, 1..=[`WINDOW_BLOCKS_MAX`].
    pub commit_window_blocks: u64,
    /// Blocks of the reveal phase, 1..=[`WINDOW_BLOCKS_MAX`].
    pub reveal_window_blocks: u64,
    /// Share of the round's eligible stake that must reveal, 1..=10000 basis points.
    pub quorum_bps: u16,
    /// Least revealed stake, in tokens, for a round to produce a price (0: no floor beyond
    /// `quorum_bps`).
    pub quorum_stake_min: Amount,
    /// A reveal within this distance of the median (basis points of the median, inclusive)
    /// is in band; at most 10000.
    pub reward_band_bps: u16,
    /// Share of an operator's stake taken for committing without a valid reveal; ≤ 10000.
    pub reveal_miss_penalty_bps: u16,
    /// Share of an operator's stake taken for a reveal outside the band; ≤ 10000.
    pub out_of_band_penalty_bps: u16,
    /// Tokens shared by the in-band reporters of each round that produces a price.
    pub round_reward: Amount,
}

/// A parameter that breaks its rule: `feed BTC/USD: commit_window_blocks = 0: ...`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{field} = {value}: {rule}", feed.as_ref().map(|f| format!("feed {f}: ")).unwrap_or_default())]
pub struct ParamError {
    /// The feed the field belongs to; `None` for [`OracleConfig`] fields.
    pub feed: Option<FeedId>,
    pub field: &'static str,
    pub value: u64,
    pub rule: String,
}

impl OracleConfig {
    pub fn validate(&self) -> Result<(), ParamError> {
        let bad = |field, value, rule: String| ParamError {
            feed: None,
            field,
            value,
            rule,
        };
        if self.unbonding_blocks == 0 || self.unbonding_blocks > UNBONDING_BLOCKS_MAX {
            return Err(bad(
                "unbonding_blocks",
                self.unbonding_blocks,
                format!(
                    "must be 1..={UNBONDING_BLOCKS_MAX} blocks; unstaking must wait so a penalty cannot be dodged"
                ),
            ));
        }
        if self.min_operator_stake.is_zero() {
            return Err(bad(
                "min_operator_stake",
                0,
                "must be at least 1, so that every eligible operator has weight".into(),
            ));
        }
        Ok(())
    }
}

impl FeedParams {
    /// Checks the feed on its own and against `config` (the unbonding period must cover a
    /// whole round).
    pub fn validate(&self, config: &OracleConfig) -> Result<(), ParamError> {
        let bad = |field, value, rule: String| ParamError {
            feed: Some(self.id.clone()),
            field,
            value,
            rule,
        };
        if u32::from(self.decimals) > FEED_DECIMALS_MAX {
            return Err(bad(
                "decimals",
                self.decimals.into(),
                format!("must be at most {FEED_DECIMALS_MAX}"),
            ));
        }
        for (field, value) in [
            ("commit_window_blocks", self.commit_window_blocks),
            ("reveal_window_blocks", self.reveal_window_blocks),
        ] {
            if value == 0 || value > WINDOW_BLOCKS_MAX {
                return Err(bad(
                    field,
                    value,
                    format!("must be 1..={WINDOW_BLOCKS_MAX} blocks"),
                ));
            }
        }
        if self.quorum_bps == 0 || u32::from(self.quorum_bps) > BPS_MAX {
            return Err(bad(
                "quorum_bps",
                self.quorum_bps.into(),
                format!("must be 1..={BPS_MAX} basis points of the round's eligible stake"),
            ));
        }
        for (field, value) in [
            ("reward_band_bps", self.reward_band_bps),
            ("reveal_miss_penalty_bps", self.reveal_miss_penalty_bps),
            ("out_of_band_penalty_bps", self.out_of_band_penalty_bps),
        ] {
            if u32::from(value) > BPS_MAX {
                return Err(bad(
                    field,
                    value.into(),
                    format!("must be at most {BPS_MAX} basis points (100%)"),
                ));
            }
        }
        let round_blocks = self.round_blocks();
        if config.unbonding_blocks < round_blocks {
            return Err(bad(
                "commit_window_blocks + reveal_window_blocks",
                round_blocks,
                format!(
                    "a round must not be longer than the oracle's unbonding_blocks ({}), or an operator could unstake and leave before its round is judged",
                    config.unbonding_blocks
                ),
            ));
        }
        Ok(())
    }

    /// Blocks in one round: the commit window then the reveal window.
    pub fn round_blocks(&self) -> u64 {
        // Both windows are at most WINDOW_BLOCKS_MAX once validated; saturate before that.
        self.commit_window_blocks
            .saturating_add(self.reveal_window_blocks)
    }

    /// The feed's round schedule if its rounds start at `start`.
    pub fn schedule(&self, start: Height) -> RoundSchedule {
        RoundSchedule {
            start,
            commit_blocks: self.commit_window_blocks,
            reveal_blocks: self.reveal_window_blocks,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn config() -> OracleConfig {
        OracleConfig {
            unbonding_blocks: 100,
            min_operator_stake: Amount(1000),
        }
    }

    pub(crate) fn feed(id: &str) -> FeedParams {
        FeedParams {
            id: FeedId::new(id).unwrap(),
            decimals: 6,
            commit_window_blocks: 5,
            reveal_window_blocks: 5,
            quorum_bps: 5000,
            quorum_stake_min: Amount(0),
            reward_band_bps: 100,
            reveal_miss_penalty_bps: 10,
            out_of_band_penalty_bps: 10,
            round_reward: Amount(10),
        }
    }

    #[test]
    fn valid_parameters_pass() {
        config().validate().unwrap();
        feed("BTC/USD").validate(&config()).unwrap();
    }

    #[test]
    fn each_bad_field_is_named_with_its_value() {
        let c = config();
        type Spoil = fn(&mut FeedParams);
        let cases: Vec<(Spoil, &str, u64)> = vec![
            (|f| f.decimals = 19, "decimals", 19),
            (|f| f.commit_window_blocks = 0, "commit_window_blocks", 0),
            (
                |f| f.reveal_window_blocks = 100_001,
                "reveal_window_blocks",
                100_001,
            ),
            (|f| f.quorum_bps = 0, "quorum_bps", 0),
            (|f| f.quorum_bps = 10_001, "quorum_bps", 10_001),
            (|f| f.reward_band_bps = 10_001, "reward_band_bps", 10_001),
            (
                |f| f.reveal_miss_penalty_bps = 20_000,
                "reveal_miss_penalty_bps",
                20_000,
            ),
            (
                |f| f.out_of_band_penalty_bps = u16::MAX,
                "out_of_band_penalty_bps",
                u16::MAX as u64,
            ),
            (
                |f| f.commit_window_blocks = 96,
                "commit_window_blocks + reveal_window_blocks",
                101,
            ),
        ];
        for (spoil, field, value) in cases {
            let mut f = feed("BTC/USD");
            spoil(&mut f);
            let err = f.validate(&c).unwrap_err();
            assert_eq!((err.field, err.value), (field, value));
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("feed BTC/USD: {field} = {value}: ")),
                "{text}"
            );
        }
    }

    #[test]
    fn config_rules() {
        let mut c = config();
        c.unbonding_blocks = 0;
        assert_eq!(c.validate().unwrap_err().field, "unbonding_blocks");
        let mut c = config();
        c.min_operator_stake = Amount(0);
        let err = c.validate().unwrap_err();
        assert_eq!(err.field, "min_operator_stake");
        assert!(err.to_string().starts_with("min_operator_stake = 0: "));
    }
}
