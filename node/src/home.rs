//! A node's home directory: `config.toml`, `genesis.toml`, `node.key` and `data/` (the
//! RocksDB store). `cairn init` creates it; `cairn node run` reads it.

use std::path::{Path, PathBuf};

use cairn_ledger::genesis::{Genesis, GenesisError, Upgrade};
use cairn_ledger::keys::{self, KeyError};
use cairn_ledger::store::{AppendError, Store, StoreError};
use cairn_ledger::upgrades::ScheduleError;
use cairn_ledger::{Address, Hash, Height};
use serde::Serialize;

use crate::config::{ConfigError, NodeConfig};

#[derive(Clone, Debug)]
pub struct Home {
    pub root: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("{path} already holds a node (config.toml exists); choose another --home or remove it")]
    AlreadyInitialised { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Genesis(#[from] GenesisError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("upgrade not scheduled: {0}")]
    Schedule(ScheduleError),
}

impl From<AppendError> for HomeError {
    fn from(e: AppendError) -> HomeError {
        match e {
            AppendError::Refused(e) => HomeError::Schedule(e),
            AppendError::Store(e) => HomeError::Store(e),
        }
    }
}

/// What `cairn upgrade schedule` reports: the entry appended and the schedule now in force.
#[derive(Clone, Debug, Serialize)]
pub struct ScheduleReport {
    pub home: PathBuf,
    pub tip: Height,
    pub appended: Upgrade,
    pub scheduled: Vec<Upgrade>,
    pub schedule_hash: Hash,
}

/// What `cairn init` reports.
#[derive(Clone, Debug, Serialize)]
pub struct InitReport {
    pub home: PathBuf,
    pub chain_id: String,
    pub genesis_hash: Hash,
    pub address: Address,
    pub peer_id: String,
    pub validator: bool,
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("genesis.toml")
    }
    pub fn key_path(&self) -> PathBuf {
        self.root.join("node.key")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root.join("data")
    }

    /// Creates a node home from a genesis file and a key file. Everything is checked before
    /// anything is written, and an existing home is never overwritten.
    pub fn init(
        root: &Path,
        genesis_file: &Path,
        key_file: &Path,
        config: &NodeConfig,
    ) -> Result<InitReport, HomeError> {
        let home = Home::new(root);
        let genesis = Genesis::load(genesis_file)?;
        let key = keys::read_key_file(key_file)?;
        config.validate(&home.config_path())?;
        if home.config_path().exists() {
            return Err(HomeError::AlreadyInitialised {
                path: root.to_owned(),
            });
        }
        let write_err = |path: &Path| {
            let path = path.to_owned();
            move |source| HomeError::Write { path, source }
        };
        std::fs::create_dir_all(root).map_err(write_err(root))?;
        std::fs::copy(genesis_file, home.genesis_path())
            .map_err(write_err(&home.genesis_path()))?;
        keys::write_key_file(&home.key_path(), &key)?;
        std::fs::write(home.config_path(), config.to_documented_toml())
            .map_err(write_err(&home.config_path()))?;
        // Opening the store writes block 0, so a bad genesis or data dir fails here, at init.
        Store::open(&home.data_dir(), &genesis)?;
        let public = key.public();
        Ok(InitReport {
            home: root.to_owned(),
            chain_id: genesis.chain_id.clone(),
            genesis_hash: genesis.hash(),
            address: public.address(),
            peer_id: keys::peer_id(&public),
            validator: genesis.validators.iter().any(|v| v.public_key == public),
        })
    }

    pub fn load_config(&self) -> Result<NodeConfig, HomeError> {
        Ok(NodeConfig::load(&self.config_path())?)
    }

    pub fn load_genesis(&self) -> Result<Genesis, HomeError> {
        Ok(Genesis::load(&self.genesis_path())?)
    }

    /// Appends `upgrade` to the schedule in this home's store (`cairn upgrade schedule`), at
    /// least `margin` blocks above its tip. The node must be stopped: a running one holds
    /// the store ([`StoreError::Locked`]) and reads its schedule only at start.
    pub fn schedule_upgrade(
        &self,
        upgrade: Upgrade,
        margin: u64,
    ) -> Result<ScheduleReport, HomeError> {
        let genesis = self.load_genesis()?;
        let mut store = Store::open(&self.data_dir(), &genesis)?;
        store.append_upgrade(upgrade.clone(), margin)?;
        Ok(ScheduleReport {
            home: self.root.clone(),
            tip: store.tip().height,
            appended: upgrade,
            scheduled: store.schedule().upgrades().to_vec(),
            schedule_hash: store.schedule().hash(),
        })
    }
}
