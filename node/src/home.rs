//! A node's home directory: `config.toml`, `genesis.toml`, `node.key` and `data/` (the
//! RocksDB store). `cairn init` creates it; `cairn node run` reads it.

use std::path::{Path, PathBuf};

use cairn_ledger::genesis::{Genesis, GenesisError};
use cairn_ledger::keys::{self, KeyError};
use cairn_ledger::store::{Store, StoreError};
use cairn_ledger::{Address, Hash};
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
}
