//! `cairn node run`: opens the home's store, starts the network, the RPC server and the
//! driver, and runs until asked to stop or until the node cannot go on.
//!
//! The driver runs on its own thread with its own single-threaded runtime: its store writes
//! (fsync per vote, one batch per commit) block that thread only, never the network or the
//! RPC server, which share the caller's runtime.
//!
//! A store write that fails (a full disk) stops the driver before anything that write
//! guarded leaves; the node then stops with [`RunError::DiskFull`] or
//! [`RunError::DataDirWrite`], exit status [`EXIT_DATA_DIR`], whatever the engine.

use std::future::Future;
use std::sync::{Arc, Mutex};

use cairn_consensus::bft::{Ed25519Signer, Ed25519Verifier, ValidatorSet};
use cairn_consensus::{hotstuff, pbft};
use cairn_ledger::Height;
use cairn_ledger::genesis::EngineParams;
use cairn_ledger::keys::read_key_file;
use cairn_ledger::store::Store;
use futures::FutureExt;
use futures::future::LocalBoxFuture;
use tokio::sync::{mpsc, oneshot, watch};

use crate::home::Home;
use crate::host::status::{
    EngineStatus, LeaderElectionStatus, NodeStatus, NodeView, Readiness, StatusBoard,
};
use crate::host::{DriverError, NodeIo};
use crate::hotstuff::chain::{Chain, MissingSafetyState};
use crate::hotstuff::seam::BftEngine;
use crate::hotstuff::{Driver, DriverParts};
use crate::http::{self, RpcState};
use crate::metrics::{Metrics, ReasonLabel};
use crate::p2p::{self, P2pConfig};
use crate::pow::chain::PowChain;
use crate::pow::{MiningSetup, PowDriver, PowParts};
use crate::txpool::gossip::{
    PoolGrowth, TX_GOSSIP_QUEUE_MAX, TxGossipWorker, publish_rpc_admitted,
};
use crate::txpool::mempool::Mempool;
use cairn_consensus::pow::PowRules;

/// Transactions admitted by the RPC and waiting to be gossiped; beyond it they stay in the
/// mempool without being announced (peers get them in blocks).
pub const ADMITTED_QUEUE_MAX: usize = 4096;

/// Exit status of `cairn node run` when the store cannot write to the data directory (a full
/// disk, a failing one): sysexits(3)'s `EX_IOERR`. Every other failure exits with 1.
pub const EXIT_DATA_DIR: i32 = 74;

/// Exit status of `cairn node run --exit-on-halt` once the chain stops before an upgrade this
/// binary lacks: sysexits(3)'s `EX_TEMPFAIL`. Restarting the same binary stops again at once;
/// a supervisor should not restart on it (systemd: `RestartPreventExitStatus=75`) but wait
/// for the operator to install a release that has the upgrade.
pub const EXIT_UPGRADE_HALT: i32 = 75;

/// How often `--exit-on-halt` looks whether the driver has stopped the chain.
const HALT_POLL: std::time::Duration = std::time::Duration::from_millis(250);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Home(#[from] crate::home::HomeError),
    #[error("cannot read the node key {path}: {source}")]
    Key {
        path: std::path::PathBuf,
        source: cairn_ledger::keys::KeyError,
    },
    #[error("{path}: [mining] reward_address {value:?}: {reason}")]
    RewardAddress {
        path: std::path::PathBuf,
        value: String,
        reason: String,
    },
    #[error("cannot open the ledger in {path}: {source}")]
    Store {
        path: std::path::PathBuf,
        source: cairn_ledger::store::StoreError,
    },
    #[error(
        "cannot listen for RPC on {addr}: {source} (another node may be using it; change \
         [rpc] listen in {config})"
    )]
    RpcListen {
        addr: String,
        config: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("networking: {0} (see [p2p] in {1})")]
    P2p(p2p::P2pError, std::path::PathBuf),
    #[error("cannot start consensus: {0}")]
    Consensus(String),
    #[error("the node stopped: {0}")]
    Halted(String),
    #[error("exiting as asked (--exit-on-halt): {0}")]
    UpgradeHalt(String),
    #[error(
        "the node stopped: the data directory {path} is full (no space left on device), so \
         nothing that needed the failed write was sent. Free space there, then restart the \
         node; nothing committed is lost ({detail})"
    )]
    DiskFull {
        path: std::path::PathBuf,
        detail: String,
    },
    #[error(
        "the node stopped: cannot write to the data directory {path}, so nothing that needed \
         the failed write was sent. Check the disk (dmesg, df, permissions), then restart the \
         node ({detail})"
    )]
    DataDirWrite {
        path: std::path::PathBuf,
        detail: String,
    },
}

impl RunError {
    /// The exit status `cairn node run` ends with after this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::DiskFull { .. } | RunError::DataDirWrite { .. } => EXIT_DATA_DIR,
            RunError::UpgradeHalt(_) => EXIT_UPGRADE_HALT,
            _ => 1,
        }
    }

    /// The store failed to open: a full disk is told apart from the rest (recovering the
    /// write-ahead log writes, so a full disk can stop a node before it starts).
    fn store_open(path: std::path::PathBuf, source: cairn_ledger::store::StoreError) -> RunError {
        if source.no_space() {
            RunError::DiskFull {
                path,
                detail: source.to_string(),
            }
        } else {
            RunError::Store { path, source }
        }
    }

    /// The driver stopped on `why`: if a store write failed, that is the reason to report,
    /// whichever driver noticed it and however it put it.
    fn halted(store: &Store, why: String) -> RunError {
        match store.write_failure() {
            Some(f) if f.no_space => RunError::DiskFull {
                path: f.path.clone(),
                detail: why,
            },
            Some(f) => RunError::DataDirWrite {
                path: f.path.clone(),
                detail: why,
            },
            None => RunError::Halted(why),
        }
    }
}

/// How `cairn node run` was asked to start, beyond what config.toml says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunOptions {
    /// `--unsafe-start-without-safety-state`: a validator whose store has blocks but no
    /// consensus safety state starts anyway (see `MissingSafetyState::Allow`).
    pub unsafe_start_without_safety_state: bool,
    /// `--exit-on-halt`: once the chain stops before an upgrade this binary lacks, exit with
    /// [`EXIT_UPGRADE_HALT`] instead of staying up to serve reads.
    pub exit_on_halt: bool,
}

/// Runs the node in `home` until `shutdown` completes (`Ok`) or the node halts (`Err`).
pub async fn run(home: &Home, shutdown: impl Future<Output = ()>) -> Result<(), RunError> {
    run_with(home, RunOptions::default(), shutdown).await
}

/// [`run`] with the options of `cairn node run`.
pub async fn run_with(
    home: &Home,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let config = home.load_config()?;
    let genesis = home.load_genesis()?;
    let key_path = home.key_path();
    let key = read_key_file(&key_path).map_err(|source| RunError::Key {
        path: key_path.clone(),
        source,
    })?;
    let data = home.data_dir();
    let store = Arc::new(
        Store::open(&data, &genesis)
            .map_err(|source| RunError::store_open(data.clone(), source))?,
    );
    let tip = store.tip();

    let rpc_listener = tokio::net::TcpListener::bind(&config.rpc.listen)
        .await
        .map_err(|source| RunError::RpcListen {
            addr: config.rpc.listen.clone(),
            config: home.config_path(),
            source,
        })?;
    let rpc_addr = rpc_listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| config.rpc.listen.clone());

    let p2p_config = P2pConfig::new(&config.p2p, &genesis, store.schedule(), tip.height, &key)
        .map_err(|e| RunError::P2p(e, home.config_path()))?;
    let message_bytes_max = p2p_config.message_bytes_max;
    let metrics = Arc::new(Metrics::new());
    let (tx_gossip, tx_gossip_queue) = mpsc::channel(TX_GOSSIP_QUEUE_MAX);
    let p2p_config = P2pConfig {
        transactions: Some(p2p::TxRoute {
            queue: tx_gossip,
            full: metrics
                .messages_dropped
                .get_or_create(&ReasonLabel {
                    reason: "tx_queue_full",
                })
                .clone(),
        }),
        dropped: metrics.messages_dropped.clone(),
        ..p2p_config
    };
    let (p2p_handle, events, p2p_task) = p2p::spawn(p2p_config)
        .await
        .map_err(|e| RunError::P2p(e, home.config_path()))?;

    let mut pool = Mempool::new(&genesis.chain_id, config.mempool.clone());
    pool.set_rules(store.schedule().rules_at(store.tip().height.next()));
    let mempool = Arc::new(Mutex::new(pool));
    // The one place that looks at the engine: everything below uses what it yields.
    let (config, genesis_ref) = (&config, &genesis);
    let engine = match &genesis.consensus.engine {
        EngineParams::HotStuff(_) | EngineParams::Pbft(_) => {
            let validator = genesis
                .validators
                .iter()
                .any(|v| v.public_key == key.public());
            let missing_safety = if validator && !options.unsafe_start_without_safety_state {
                MissingSafetyState::Refuse
            } else {
                MissingSafetyState::Allow
            };
            let parts = BftSetup {
                store: Arc::clone(&store),
                key,
                params: genesis.consensus.engine.clone(),
                data: data.clone(),
                missing_safety,
            };
            let pbft = matches!(genesis.consensus.engine, EngineParams::Pbft(_));
            EnginePlan {
                name: if pbft { "pbft" } else { "hotstuff" },
                validator,
                // A leader listens to the pool only while it holds back an empty block.
                listens_to_pool: false,
                status: if pbft {
                    EngineStatus::Pbft {
                        height: tip.height.next(),
                        round: cairn_ledger::Round(0),
                        proposer: None,
                        election: LeaderElectionStatus::default(),
                    }
                } else {
                    EngineStatus::default()
                },
                driver: Box::new(move |io: NodeIo| bft_driver(parts, io, config)),
            }
        }
        EngineParams::Pow(params) => {
            let own_address = key.public().address();
            let store = Arc::clone(&store);
            EnginePlan {
                name: "pow",
                validator: config.mining.enabled,
                // A miner rebuilds its template whenever the pool grows.
                listens_to_pool: true,
                status: EngineStatus::Pow {
                    best_header_height: tip.height,
                },
                driver: Box::new(move |io: NodeIo| {
                    let driver =
                        pow_driver(store, params, own_address, io, home, genesis_ref, config)?;
                    Ok(
                        Box::new(move |stop: watch::Receiver<bool>| driver.run(stop).boxed_local())
                            as DriverRun,
                    )
                }),
            }
        }
    };
    let board = Arc::new(StatusBoard::new(
        NodeStatus {
            validator: engine.validator,
            syncing: true,
            engine: engine.status.clone(),
            ..NodeStatus::default()
        },
        Readiness::NotReady("starting".into()),
    ));
    let (admitted_tx, admitted_rx) = mpsc::channel(ADMITTED_QUEUE_MAX);
    let rpc_state = RpcState {
        store: Arc::clone(&store),
        mempool: Arc::clone(&mempool),
        node: board.clone(),
        metrics: Arc::clone(&metrics),
        validators: genesis.validators.clone().into(),
        limits: config.rpc.clone(),
        admitted: Some(admitted_tx),
    };
    let (stop_rpc, rpc_stopped) = oneshot::channel::<()>();
    let rpc_task = tokio::spawn(http::serve(rpc_listener, rpc_state, async {
        let _ = rpc_stopped.await;
    }));

    tracing::info!(
        chain_id = %genesis.chain_id,
        height = %tip.height,
        peer_id = %p2p_handle.local_peer_id,
        p2p = %p2p_handle.listen_addr,
        rpc = %rpc_addr,
        engine = engine.name,
        "node started"
    );

    let pool_growth = Arc::new(PoolGrowth::new(engine.listens_to_pool));
    let rpc_publisher = tokio::spawn(publish_rpc_admitted(
        admitted_rx,
        p2p_handle.clone(),
        message_bytes_max,
        Arc::clone(&pool_growth),
    ));
    let tx_worker = tokio::spawn(
        TxGossipWorker {
            store: Arc::clone(&store),
            mempool: Arc::clone(&mempool),
            metrics: Arc::clone(&metrics),
            p2p: p2p_handle.clone(),
            growth: Arc::clone(&pool_growth),
        }
        .run(tx_gossip_queue),
    );
    let halt_board = Arc::clone(&board);
    let io = NodeIo {
        mempool,
        metrics,
        board,
        p2p: p2p_handle.clone(),
        events,
        pool_growth,
        genesis: genesis.clone(),
        message_bytes_max,
    };
    let driver = (engine.driver)(io)?;
    let (stop_driver, stop_rx) = watch::channel(false);
    let (done_tx, done_rx) = oneshot::channel();
    let driver_thread = std::thread::Builder::new()
        .name("cairn-driver".into())
        .spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(driver(stop_rx)),
                Err(e) => Err(DriverError::Halt(format!(
                    "cannot start the driver's runtime: {e}"
                ))),
            };
            let _ = done_tx.send(result);
        })
        .map_err(|e| RunError::Consensus(format!("cannot start the driver thread: {e}")))?;

    let mut done_rx = done_rx;
    let halted_at_upgrade = async {
        if !options.exit_on_halt {
            return std::future::pending::<String>().await;
        }
        loop {
            tokio::time::sleep(HALT_POLL).await;
            if let Some(why) = halt_board.status().halted {
                return why;
            }
        }
    };
    let mut exit_on_halt = None;
    let result = tokio::select! {
        _ = shutdown => {
            tracing::info!("shutting down");
            // The driver finishes the effect it is executing first, so a commit or a
            // persisted vote is never cut in half.
            let _ = stop_driver.send(true);
            (&mut done_rx).await
        }
        why = halted_at_upgrade => {
            tracing::info!("the chain stopped before an upgrade: exiting (--exit-on-halt)");
            let _ = stop_driver.send(true);
            exit_on_halt = Some(why);
            (&mut done_rx).await
        }
        result = &mut done_rx => result,
    };
    let _ = tokio::task::spawn_blocking(move || driver_thread.join()).await;
    let _ = stop_rpc.send(());
    let _ = p2p_handle.shutdown().await;
    let _ = rpc_task.await;
    let _ = p2p_task.await;
    tx_worker.abort();
    rpc_publisher.abort();
    match result {
        Ok(Ok(())) => match exit_on_halt {
            Some(why) => Err(RunError::UpgradeHalt(why)),
            None => Ok(()),
        },
        Ok(Err(e)) => Err(RunError::halted(&store, e.to_string())),
        Err(_) => Err(RunError::Halted("the driver thread panicked".into())),
    }
}

/// What the genesis's engine means for the rest of the wiring.
struct EnginePlan<'a> {
    /// As the log names it.
    name: &'static str,
    /// Whether this node makes blocks: a validator in the genesis set, or a miner.
    validator: bool,
    /// Whether the driver wants to hear of every admission to the pool from the start.
    listens_to_pool: bool,
    /// The engine's part of the status until the driver posts its own.
    status: EngineStatus,
    /// Builds the driver on the shared wiring.
    driver: Box<dyn FnOnce(NodeIo) -> Result<DriverRun, RunError> + Send + 'a>,
}

/// A built driver: run on the driver's own thread until the receiver turns true.
type DriverRun = Box<
    dyn FnOnce(watch::Receiver<bool>) -> LocalBoxFuture<'static, Result<(), DriverError>> + Send,
>;

fn pow_driver(
    store: Arc<Store>,
    params: &cairn_ledger::genesis::PowParams,
    own_address: cairn_ledger::Address,
    io: NodeIo,
    home: &Home,
    genesis: &cairn_ledger::genesis::Genesis,
    config: &crate::config::NodeConfig,
) -> Result<PowDriver, RunError> {
    let reward_to = config
        .mining
        .reward_address_or(own_address)
        .map_err(|reason| RunError::RewardAddress {
            path: home.config_path(),
            value: config.mining.reward_address.clone(),
            reason,
        })?;
    let rules = PowRules::new(params).map_err(|e| RunError::Consensus(e.to_string()))?;
    let (chain, opened) = PowChain::open(
        store,
        rules,
        genesis.consensus.block_txs_max,
        genesis.consensus.block_bytes_max,
        config.pow.reorg_depth_max,
    )
    .map_err(|e| RunError::Consensus(e.to_string()))?;
    PowDriver::new(PowParts {
        chain,
        opened,
        io,
        mining: config.mining.enabled.then_some(MiningSetup {
            threads: config.mining.threads as usize,
            reward_to,
        }),
    })
    .map_err(|e| RunError::Consensus(e.to_string()))
}

/// What only the BFT drivers need.
struct BftSetup {
    store: Arc<Store>,
    key: cairn_ledger::crypto::Keypair,
    params: EngineParams,
    data: std::path::PathBuf,
    missing_safety: MissingSafetyState,
}

/// The BFT driver for the genesis's engine, resumed from what the store holds.
fn bft_driver(
    setup: BftSetup,
    shared: NodeIo,
    config: &crate::config::NodeConfig,
) -> Result<DriverRun, RunError> {
    let BftSetup {
        store,
        key,
        params,
        data,
        missing_safety,
    } = setup;
    let genesis = &shared.genesis;
    let validators = ValidatorSet::from_genesis(&genesis.validators)
        .map_err(|e| RunError::Consensus(e.to_string()))?;
    let block_zero = store
        .block_at(Height(0))
        .map_err(|source| RunError::Store {
            path: data.clone(),
            source,
        })?
        .ok_or_else(|| RunError::Consensus("block 0 is missing from the store".into()))?;
    let mut chain = Chain::new(
        Arc::clone(&store),
        genesis.consensus.block_txs_max,
        genesis.consensus.block_bytes_max,
    );
    let stored = chain
        .restart_state(missing_safety)
        .map_err(RunError::Consensus)?;
    if stored.is_some() {
        tracing::info!("resuming consensus from the store");
    }
    let unreadable = |e: cairn_ledger::codec::CodecError| {
        RunError::Consensus(format!(
            "the stored consensus safety state is unreadable ({e}); the store is corrupt, or \
             was written by another consensus engine"
        ))
    };
    let double_sign_check_rounds = config.consensus.double_sign_check_rounds;
    let validator_keys: Vec<_> = genesis.validators.iter().map(|v| v.public_key).collect();
    let signer = Box::new(Ed25519Signer::new(key));
    let empty_block_interval =
        std::time::Duration::from_millis(config.consensus.empty_block_interval_ms);
    let consensus_error = |e: &dyn std::fmt::Display| RunError::Consensus(e.to_string());
    let run: DriverRun = match params {
        EngineParams::HotStuff(params) => {
            let restart = match stored {
                None => None,
                Some(s) => Some(hotstuff::RestartState {
                    safety: match s.safety {
                        Some(bytes) => hotstuff::SafetyState::decode(&bytes).map_err(unreadable)?,
                        None => {
                            hotstuff::SafetyState::initial(hotstuff::genesis_qc(block_zero.hash()))
                        }
                    },
                    committed: s.committed,
                    history: s.history,
                    blocks: s.blocks,
                }),
            };
            let round_timeout_base = std::time::Duration::from_millis(params.round_timeout_ms_base);
            let engine = hotstuff::Engine::new(
                hotstuff::EngineConfig {
                    validators,
                    params,
                    genesis: block_zero,
                    double_sign_check_rounds,
                    unsafe_no_double_sign_guard: false,
                    unsafe_skip_voted_round_check: false,
                },
                signer,
                Box::new(Ed25519Verifier),
                restart,
            )
            .map_err(|e| consensus_error(&e))?;
            driver_run(
                DriverParts {
                    engine,
                    chain,
                    io: shared,
                    validators: validator_keys,
                    empty_block_interval,
                    round_timeout_base,
                },
                double_sign_check_rounds,
            )
        }
        EngineParams::Pbft(params) => {
            let restart = match stored {
                None => None,
                Some(s) => Some(pbft::RestartState {
                    safety: match s.safety {
                        Some(bytes) => pbft::SafetyState::decode(&bytes).map_err(unreadable)?,
                        None => pbft::SafetyState::initial(),
                    },
                    committed: s.committed,
                    history: s.history,
                    blocks: s.blocks,
                }),
            };
            let round_timeout_base = std::time::Duration::from_millis(params.round_timeout_ms_base);
            let engine = pbft::Engine::new(
                pbft::EngineConfig {
                    validators,
                    round_timeout_ms_base: params.round_timeout_ms_base,
                    round_timeout_ms_max: params.round_timeout_ms_max,
                    genesis: block_zero,
                    double_sign_check_rounds,
                    leader_election: params.leader_election,
                    unsafe_skip_justification: false,
                },
                signer,
                Box::new(Ed25519Verifier),
                restart,
            )
            .map_err(|e| consensus_error(&e))?;
            driver_run(
                DriverParts {
                    engine,
                    chain,
                    io: shared,
                    validators: validator_keys,
                    empty_block_interval,
                    round_timeout_base,
                },
                double_sign_check_rounds,
            )
        }
        EngineParams::Pow(_) => {
            return Err(RunError::Consensus(
                "a proof-of-work genesis has no BFT driver".into(),
            ));
        }
    };
    Ok(run)
}

/// The driver of `parts`, ready to run on the driver's thread.
fn driver_run<E: BftEngine>(parts: DriverParts<E>, double_sign_check_rounds: u64) -> DriverRun {
    if double_sign_check_rounds > 0 && parts.engine.is_validator() {
        tracing::info!(
            rounds = double_sign_check_rounds,
            "signing nothing for the first rounds, in case this key is signing elsewhere \
             ([consensus] double_sign_check_rounds)"
        );
    }
    let driver = Driver::new(parts);
    Box::new(move |stop: watch::Receiver<bool>| driver.run(stop).boxed_local())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_ledger::store::StoreError;

    fn db_error(message: &str) -> StoreError {
        StoreError::Db {
            path: "/n/data".into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_store_that_cannot_open_on_a_full_disk_says_so_and_exits_74_and_other_failures_exit_1() {
        let full = RunError::store_open(
            "/n/data".into(),
            db_error("IO error: No space left on device: While appending to file: 000021.sst"),
        );
        assert_eq!(full.exit_code(), EXIT_DATA_DIR);
        let text = full.to_string();
        assert!(
            text.contains("/n/data is full (no space left on device)")
                && text.contains("Free space there, then restart the node")
                && text.contains("000021.sst"),
            "{text}"
        );
        let other = RunError::store_open(
            "/n/data".into(),
            db_error("Corruption: bad block in 000021.sst"),
        );
        assert!(matches!(other, RunError::Store { .. }), "{other}");
        assert_eq!(other.exit_code(), 1);
        assert_eq!(RunError::Halted("a bug".into()).exit_code(), 1);
    }
}
