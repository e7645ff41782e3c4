use std::path::PathBuf;

use anyhow::Result;
use cairn_ledger::crypto::Keypair;
use cairn_ledger::keys;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::output::{self, Output};

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Generate a new key and write it to a file readable only by you (mode 0600).
    Generate(GenerateArgs),
    /// Print a key file's address, libp2p peer id and public key.
    Show(ShowArgs),
}

#[derive(Args)]
pub struct GenerateArgs {
    /// Where to write the key; an existing file is never overwritten.
    #[arg(long, default_value = "node.key")]
    out: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Args)]
pub struct ShowArgs {
    /// The key file to read.
    file: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Serialize)]
struct KeyInfo {
    address: String,
    peer_id: String,
    public_key: String,
    file: PathBuf,
}

fn print_key(key: &Keypair, file: PathBuf, output: Output) {
    let public = key.public();
    let info = KeyInfo {
        address: public.address().to_string(),
        peer_id: keys::peer_id(&public),
        public_key: public.to_string(),
        file,
    };
    output::print(
        output,
        &info,
        &[
            ("address", info.address.clone()),
            ("peer_id", info.peer_id.clone()),
            ("public_key", info.public_key.clone()),
            ("file", info.file.display().to_string()),
        ],
    );
}

pub fn run(command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Generate(a) => {
            let key = Keypair::generate(&mut rand::rngs::OsRng);
            keys::write_key_file(&a.out, &key)?;
            print_key(&key, a.out, a.output);
        }
        KeysCommand::Show(a) => {
            let key = keys::read_key_file(&a.file)?;
            print_key(&key, a.file, a.output);
        }
    }
    Ok(())
}
