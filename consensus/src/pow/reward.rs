//! What a miner earns: the block subsidy, halving every `halving_interval_blocks` from
//! genesis, plus the block's fees; and when that reward may be spent (coinbase maturity, so
//! that a reward a reorg takes back has not already been passed on).
//!
//! Owns: the arithmetic. Never: credits an account or tracks locked balances (the ledger's
//! state machine does, with the heights this module gives it).

use cairn_ledger::{Amount, Height};

use super::ParamsError;

/// Halvings after which the subsidy is zero whatever its start: a `u64` halved 64 times is
/// zero, and shifting by 64 or more would overflow (Bitcoin's `GetBlockSubsidy` rule).
pub const HALVINGS_MAX: u64 = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RewardSchedule {
    block_reward: Amount,
    halving_interval_blocks: u64,
    coinbase_maturity_blocks: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RewardError {
    #[error("subsidy {subsidy} plus fees {fees} at height {height} overflows an amount")]
    Overflow {
        height: Height,
        subsidy: Amount,
        fees: Amount,
    },
    #[error(
        "the reward of block {coinbase_height} is spendable from height {mature_at}, not at {spend_height}"
    )]
    Immature {
        coinbase_height: Height,
        spend_height: Height,
        mature_at: Height,
    },
}

impl RewardSchedule {
    pub fn new(
        block_reward: Amount,
        halving_interval_blocks: u64,
        coinbase_maturity_blocks: u64,
    ) -> Result<RewardSchedule, ParamsError> {
        if halving_interval_blocks == 0 {
            return Err(ParamsError::Zero {
                field: "halving_interval_blocks",
            });
        }
        Ok(RewardSchedule {
            block_reward,
            halving_interval_blocks,
            coinbase_maturity_blocks,
        })
    }

    pub fn coinbase_maturity_blocks(&self) -> u64 {
        self.coinbase_maturity_blocks
    }

    /// The new coins the block at `height` may create: the genesis reward halved once per
    /// full interval since genesis, zero after [`HALVINGS_MAX`] halvings. (Block 0 creates
    /// none: its accounts come from the genesis file.)
    pub fn subsidy(&self, height: Height) -> Amount {
        let halvings = height.0 / self.halving_interval_blocks;
        if halvings >= HALVINGS_MAX {
            return Amount::ZERO;
        }
        Amount(self.block_reward.0 >> halvings)
    }

    /// What the miner of the block at `height` is paid: the subsidy plus the block's fees.
    pub fn block_reward(&self, height: Height, fees: Amount) -> Result<Amount, RewardError> {
        let subsidy = self.subsidy(height);
        subsidy.checked_add(fees).ok_or(RewardError::Overflow {
            height,
            subsidy,
            fees,
        })
    }

    /// The first height at which the reward of block `coinbase_height` may be spent.
    pub fn mature_at(&self, coinbase_height: Height) -> Height {
        Height(
            coinbase_height
                .0
                .saturating_add(self.coinbase_maturity_blocks),
        )
    }

    /// Bitcoin's rule: a reward is spendable in a block at least `coinbase_maturity_blocks`
    /// above the one that earned it.
    pub fn check_maturity(
        &self,
        coinbase_height: Height,
        spend_height: Height,
    ) -> Result<(), RewardError> {
        let mature_at = self.mature_at(coinbase_height);
        if spend_height < mature_at {
            return Err(RewardError::Immature {
                coinbase_height,
                spend_height,
                mature_at,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn bitcoin() -> RewardSchedule {
        RewardSchedule::new(Amount(50_0000_0000), 210_000, 100).unwrap()
    }

    #[test]
    fn subsidy_halves_at_each_interval() {
        let s = bitcoin();
        assert_eq!(s.subsidy(Height(1)), Amount(50_0000_0000));
        assert_eq!(s.subsidy(Height(209_999)), Amount(50_0000_0000));
        assert_eq!(s.subsidy(Height(210_000)), Amount(25_0000_0000));
        assert_eq!(s.subsidy(Height(420_000)), Amount(12_5000_0000));
        // Bitcoin's 33rd era is the last with a subsidy (1 satoshi, truncated from 1.16).
        assert_eq!(s.subsidy(Height(32 * 210_000)), Amount(1));
        assert_eq!(s.subsidy(Height(33 * 210_000)), Amount(0));
    }

    #[test]
    fn subsidy_is_zero_after_64_halvings_without_overflow() {
        let s = RewardSchedule::new(Amount(u64::MAX), 1, 0).unwrap();
        assert_eq!(s.subsidy(Height(63)), Amount(1));
        assert_eq!(s.subsidy(Height(64)), Amount::ZERO);
        assert_eq!(s.subsidy(Height(u64::MAX)), Amount::ZERO);
        assert_eq!(bitcoin().subsidy(Height(u64::MAX)), Amount::ZERO);
    }

    #[test]
    fn reward_adds_fees_and_reports_overflow() {
        let s = bitcoin();
        assert_eq!(
            s.block_reward(Height(1), Amount(7)),
            Ok(Amount(50_0000_0007))
        );
        assert_eq!(
            s.block_reward(Height(1), Amount(u64::MAX)),
            Err(RewardError::Overflow {
                height: Height(1),
                subsidy: Amount(50_0000_0000),
                fees: Amount(u64::MAX)
            })
        );
    }

    #[test]
    fn coinbase_matures_after_the_configured_blocks() {
        let s = bitcoin();
        assert_eq!(s.mature_at(Height(10)), Height(110));
        assert!(s.check_maturity(Height(10), Height(110)).is_ok());
        assert_eq!(
            s.check_maturity(Height(10), Height(109)),
            Err(RewardError::Immature {
                coinbase_height: Height(10),
                spend_height: Height(109),
                mature_at: Height(110)
            })
        );
        assert_eq!(s.mature_at(Height(u64::MAX)), Height(u64::MAX));
        let none = RewardSchedule::new(Amount(1), 1, 0).unwrap();
        assert!(none.check_maturity(Height(5), Height(5)).is_ok());
    }

    #[test]
    fn zero_interval_is_refused() {
        assert_eq!(
            RewardSchedule::new(Amount(1), 0, 0),
            Err(ParamsError::Zero {
                field: "halving_interval_blocks"
            })
        );
    }

    proptest! {
        #[test]
        fn subsidy_never_grows_and_total_supply_is_bounded(
            reward in any::<u64>(),
            interval in 1u64..1_000_000,
            height in any::<u64>(),
        ) {
            let s = RewardSchedule::new(Amount(reward), interval, 0).unwrap();
            let h = Height(height);
            prop_assert!(s.subsidy(h) <= Amount(reward));
            prop_assert!(s.subsidy(Height(height.saturating_add(interval))) <= s.subsidy(h));
            // Each era pays half the one before, so all eras together pay under 2 eras' worth.
            let total: u128 = (0..HALVINGS_MAX)
                .map(|era| {
                    u128::from(s.subsidy(Height(era.saturating_mul(interval))).0)
                        * u128::from(interval)
                })
                .sum();
            prop_assert!(total <= 2 * u128::from(reward) * u128::from(interval));
        }
    }
}
