//! The single-machine network `cairn testnet` and the examples start from.
//!
//! Owns the defaults of a local network. Must never read a file or a clock: the caller
//! passes the keys, the funded accounts and the genesis time.

use crate::keys;
use crate::types::{Address, Amount, ProtocolVersion, PublicKey, TimestampMs};

use super::params::{
    ConsensusParams, EngineKind, EngineParams, Genesis, GenesisAccount, GenesisFeed,
    HotStuffParams, LeaderElection, OracleParams, PbftParams, PowParams, Validator,
};

impl Genesis {
    /// A single-machine network: chain id `cairn-local`, validators named `node0`, `node1`, …
    /// with voting power 1, the `funded` accounts, one demo oracle feed `DEMO/USD`, and no
    /// upgrades. For PoW the validators are the allowed miners. The caller passes distinct
    /// keys and addresses; the result is checked by loading what [`Genesis::to_file`] writes.
    pub fn local(
        engine: EngineKind,
        validators: &[PublicKey],
        funded: &[(Address, Amount)],
        genesis_time: TimestampMs,
    ) -> Genesis {
        // Oracle windows are counted in blocks, so they are sized for the block rate: a BFT
        // network that carries traffic makes a block every few milliseconds (5 blocks would
        // be over before a publisher polling every 100 ms saw the window open), a local PoW
        // network one every 2 s.
        let window_blocks = match engine {
            EngineKind::HotStuff | EngineKind::Pbft => 30,
            EngineKind::Pow => 5,
        };
        let engine = match engine {
            EngineKind::HotStuff => EngineParams::HotStuff(HotStuffParams {
                round_timeout_ms_base: 1000,
                round_timeout_ms_max: 30_000,
                leader_election: LeaderElection::Reputation {
                    retry_after_ms: LeaderElection::RETRY_AFTER_MS_DEFAULT,
                },
            }),
            EngineKind::Pbft => EngineParams::Pbft(PbftParams {
                round_timeout_ms_base: 1000,
                round_timeout_ms_max: 30_000,
                leader_election: LeaderElection::Reputation {
                    retry_after_ms: LeaderElection::RETRY_AFTER_MS_DEFAULT,
                },
            }),
            EngineKind::Pow => EngineParams::Pow(PowParams {
                initial_bits: 0x1f00_ffff,
                target_block_time_ms: 2000,
                retarget_interval_blocks: 20,
                block_reward: Amount(50_0000_0000),
                halving_interval_blocks: 210_000,
                coinbase_maturity_blocks: 10,
                future_block_time_ms_max: 7_200_000,
            }),
        };
        Genesis {
            chain_id: "cairn-local".to_string(),
            genesis_time,
            protocol_version: ProtocolVersion(1),
            consensus: ConsensusParams {
                block_txs_max: 2000,
                block_bytes_max: 4 * 1024 * 1024,
                engine,
            },
            validators: validators
                .iter()
                .enumerate()
                .map(|(i, key)| Validator {
                    name: Some(format!("node{i}")),
                    public_key: *key,
                    voting_power: 1,
                    peer_id: keys::peer_id(key),
                })
                .collect(),
            accounts: funded
                .iter()
                .map(|&(address, balance)| GenesisAccount { address, balance })
                .collect(),
            upgrades: Vec::new(),
            oracle: OracleParams {
                unbonding_blocks: 100,
                min_operator_stake: Amount(1000),
                round_reward: Amount(10),
                feeds: vec![GenesisFeed {
                    id: "DEMO/USD".to_string(),
                    decimals: 6,
                    commit_window_blocks: window_blocks,
                    reveal_window_blocks: window_blocks,
                    quorum_bps: 5000,
                    reward_band_bps: 100,
                    reveal_miss_penalty_bps: 10,
                    out_of_band_penalty_bps: 10,
                }],
            },
        }
    }
}
