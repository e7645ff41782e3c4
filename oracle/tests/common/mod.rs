//! A small chain for tests: one oracle, blocks finished one at a time.

#![allow(dead_code)]

use cairn_oracle::*;

pub const UNBONDING_BLOCKS: u64 = 20;
pub const MIN_STAKE: u64 = 1000;

pub fn config() -> OracleConfig {
    OracleConfig {
        unbonding_blocks: UNBONDING_BLOCKS,
        min_operator_stake: Amount(MIN_STAKE),
    }
}

/// Rounds of 5 blocks: commit 3, reveal 2.
pub fn params(id: &str) -> FeedParams {
    FeedParams {
        id: FeedId::new(id).unwrap(),
        decimals: 6,
        commit_window_blocks: 3,
        reveal_window_blocks: 2,
        quorum_bps: 5000,
        quorum_stake_min: Amount(0),
        reward_band_bps: 100,
        reveal_miss_penalty_bps: 100,
        out_of_band_penalty_bps: 200,
        round_reward: Amount(1000),
    }
}

pub fn op(i: u8) -> OperatorId {
    let mut b = [0u8; 20];
    b[0] = i;
    b[19] = 0xee;
    OperatorId(b)
}

pub fn salt(i: u8, round: RoundNumber) -> Salt {
    let mut s = [i; 32];
    s[..8].copy_from_slice(&round.0.to_le_bytes());
    Salt(s)
}

pub struct Chain {
    pub oracle: Oracle,
    pub feed: FeedId,
    /// The block open for transactions; not yet ended.
    pub height: Height,
    /// Everything `end_block` reported, in order.
    pub ended: Vec<(Height, EndBlock)>,
}

impl Chain {
    /// One feed starting at height 1; the chain is at height 1.
    pub fn new(p: FeedParams) -> Chain {
        let mut oracle = Oracle::new(config()).unwrap();
        let feed = p.id.clone();
        oracle.add_feed(p, Height(1)).unwrap();
        Chain {
            oracle,
            feed,
            height: Height(1),
            ended: Vec::new(),
        }
    }

    pub fn state(&self) -> &FeedState {
        self.oracle.feed(&self.feed).unwrap()
    }

    pub fn bounds(&self) -> RoundBounds {
        self.state().open_round().bounds
    }

    pub fn round(&self) -> RoundNumber {
        self.bounds().round
    }

    /// Ends the open block and opens the next.
    pub fn finish_block(&mut self) -> EndBlock {
        let out = self.oracle.end_block(self.height).unwrap();
        self.ended.push((self.height, out.clone()));
        self.height = Height(self.height.0 + 1);
        out
    }

    /// Finishes blocks until `h` is the open one.
    pub fn go_to(&mut self, h: Height) {
        assert!(h >= self.height, "{h} is behind {}", self.height);
        while self.height < h {
            self.finish_block();
        }
    }

    /// Goes to the commit phase of the next round (the open one if it has not started).
    pub fn next_commit_phase(&mut self) {
        if self.height > self.bounds().start {
            let end = self.bounds().end;
            self.go_to(Height(end.0 + 1));
        }
        let start = self.bounds().start;
        self.go_to(start);
    }

    pub fn reveal_phase(&mut self) {
        let r = self.bounds().reveal_start;
        self.go_to(r);
    }

    /// Finishes the open round; returns its report.
    pub fn end_round(&mut self) -> RoundReport {
        let end = self.bounds().end;
        self.go_to(end);
        let out = self.finish_block();
        out.rounds.into_iter().last().expect("a round ended")
    }

    pub fn stake(&mut self, i: u8, amount: u64) -> Result<Amount, StakeError> {
        self.oracle
            .stake(&self.feed, op(i), Amount(amount), self.height)
    }

    pub fn unstake(&mut self, i: u8, amount: u64) -> Result<Unbonding, StakeError> {
        self.oracle
            .unstake(&self.feed, op(i), Amount(amount), self.height)
    }

    pub fn hash(&self, i: u8, round: RoundNumber, value: u64) -> CommitHash {
        commit_hash(&self.feed, round, Price(value), &salt(i, round), &op(i))
    }

    pub fn commit(&mut self, i: u8, value: u64) -> Result<(), CommitError> {
        let round = self.round();
        let hash = self.hash(i, round, value);
        self.oracle
            .commit(&self.feed, op(i), round, hash, self.height)
    }

    pub fn reveal(&mut self, i: u8, value: u64) -> Result<(), RevealError> {
        let round = self.round();
        self.oracle.reveal(
            &self.feed,
            op(i),
            round,
            Price(value),
            salt(i, round),
            self.height,
        )
    }

    pub fn bonded(&self, i: u8) -> u64 {
        self.state().operator(&op(i)).map_or(0, |o| o.bonded.0)
    }
}
