use std::net::TcpListener;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use cairn_ledger::keys;
use cairn_node::config::NodeConfig;
use cairn_node::home::Home;
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::genesis_cmd::{self, Mode};

#[derive(Args)]
pub struct TestnetArgs {
    #[arg(long, value_enum, default_value_t = Mode::Bft)]
    mode: Mode,
    /// Number of validators (BFT) or miners (PoW).
    #[arg(long, default_value_t = 4)]
    validators: usize,
    /// Where the network's files go: genesis, keys, one home per node, testnet.json.
    #[arg(long, default_value = "testnet")]
    dir: PathBuf,
    /// First port; node i uses P+2i for p2p and P+2i+1 for RPC.
    #[arg(long, default_value_t = 26600)]
    base_port: u16,
}

#[derive(Serialize, Deserialize)]
struct TestnetNode {
    name: String,
    rpc: String,
    p2p: String,
    home: PathBuf,
    key: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct TestnetFile {
    chain_id: String,
    genesis_hash: String,
    nodes: Vec<TestnetNode>,
    faucet_key: PathBuf,
}

pub fn run(a: TestnetArgs) -> Result<()> {
    let manifest = a.dir.join("testnet.json");
    if manifest.exists() {
        // Running it again is how people come back to their network: reuse it.
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("cannot read {}", manifest.display()))?;
        let file: TestnetFile = serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not a testnet manifest; remove {} or pass another --dir",
                manifest.display(),
                a.dir.display()
            )
        })?;
        println!(
            "using the existing testnet in {} (remove the directory for a new one)",
            a.dir.display()
        );
        print_summary(&file, &manifest);
        return Ok(());
    }
    genesis_cmd::check_validator_count(a.validators)?;
    let ports_needed = a.validators * 2;
    if (a.base_port as usize).saturating_add(ports_needed) > u16::MAX as usize {
        bail!(
            "--base-port {} leaves too few ports for {} nodes",
            a.base_port,
            a.validators
        );
    }
    for port in a.base_port..a.base_port + ports_needed as u16 {
        if TcpListener::bind(("127.0.0.1", port)).is_err() {
            bail!(
                "port {port} is already in use; free it or move every node's ports with \
                 --base-port (node i uses base+2i and base+2i+1)"
            );
        }
    }
    let net = genesis_cmd::create(a.mode, a.validators, &a.dir)?;
    let mut nodes = Vec::new();
    for (i, key) in net.validator_keys.iter().enumerate() {
        let name = format!("node{i}");
        let p2p_port = a.base_port + 2 * i as u16;
        let rpc_port = p2p_port + 1;
        let mut config = NodeConfig::default();
        config.node.moniker = name.clone();
        config.p2p.listen = format!("/ip4/127.0.0.1/tcp/{p2p_port}");
        config.rpc.listen = format!("127.0.0.1:{rpc_port}");
        let home = a.dir.join(&name);
        Home::init(&home, &net.genesis, key, &config)
            .with_context(|| format!("creating {}", home.display()))?;
        let peer_id = keys::peer_id(&keys::read_key_file(key)?.public());
        nodes.push(TestnetNode {
            name,
            rpc: format!("http://127.0.0.1:{rpc_port}"),
            p2p: format!("/ip4/127.0.0.1/tcp/{p2p_port}/p2p/{peer_id}"),
            home,
            key: key.clone(),
        });
    }
    let file = TestnetFile {
        chain_id: net.chain_id.clone(),
        genesis_hash: net.genesis_hash.clone(),
        nodes,
        faucet_key: net.faucet_key.clone(),
    };
    let json = serde_json::to_string_pretty(&file).expect("plain data serialises to JSON");
    std::fs::write(&manifest, json + "\n")
        .with_context(|| format!("cannot write {}", manifest.display()))?;
    println!(
        "created a {}-node {} testnet in {}",
        file.nodes.len(),
        match a.mode {
            Mode::Bft => "BFT",
            Mode::Pow => "proof-of-work",
        },
        a.dir.display()
    );
    print_summary(&file, &manifest);
    Ok(())
}

fn print_summary(file: &TestnetFile, manifest: &std::path::Path) {
    println!("  chain_id      {}", file.chain_id);
    println!("  genesis_hash  {}", file.genesis_hash);
    for n in &file.nodes {
        println!("  {:<6} rpc {}  home {}", n.name, n.rpc, n.home.display());
    }
    println!("  faucet key    {}", file.faucet_key.display());
    println!("  manifest      {}", manifest.display());
    println!();
    println!(
        "Not yet running: this build has the ledger, store, genesis and keys, but not the node\n\
         runtime (networking, consensus, RPC). Each home above is initialised with block 0\n\
         written; starting the nodes arrives with the running-node milestone."
    );
}
