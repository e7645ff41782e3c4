//! No input panics the engine: random bytes, and random but well-formed messages whose
//! rounds, keys, signatures and certificates are nonsense.

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::{
    Address, Hash, Height, ProtocolVersion, PublicKey, Round, Signature, TimestampMs,
};
use proptest::prelude::*;

use super::*;

fn key(kit: &Kit, pick: u8) -> PublicKey {
    // Mostly validators, sometimes a stranger.
    if (pick as usize) < kit.keys.len() * 2 {
        kit.key(pick as usize % kit.keys.len())
    } else {
        PublicKey([pick; 32])
    }
}

fn qc(kit: &Kit, round: u64, block: u8, signers: &[u8]) -> QuorumCert {
    if signers.len() >= 3 && signers[0].is_multiple_of(2) {
        kit.qc(round, Hash([block; 32]), &[0, 1, 2])
    } else {
        QuorumCert {
            round: Round(round),
            block: Hash([block; 32]),
            votes: signers
                .iter()
                .map(|&s| (key(kit, s), Signature([s; 64])))
                .collect(),
        }
    }
}

fn message(kit: &Kit, kind: u8, round: u64, x: u8, signers: &[u8]) -> Message {
    let round = round % 12;
    match kind % 5 {
        0 => {
            let justify = qc(kit, round.saturating_sub(1), x, signers);
            let block = Block {
                header: BlockHeader {
                    height: Height(u64::from(x % 4)),
                    parent: Hash([x; 32]),
                    timestamp: TimestampMs(0),
                    tx_root: Hash::ZERO,
                    state_root: Hash::ZERO,
                    proposer: Address([x; 20]),
                    protocol_version: ProtocolVersion(1),
                    seal: Seal::HotStuff {
                        round: Round(round),
                        justify,
                    },
                },
                transactions: Vec::new(),
            };
            let mut p = kit.proposal(block, None);
            if x.is_multiple_of(3) {
                p.signature = Signature([x; 64]);
            }
            Message::Proposal(Box::new(p))
        }
        1 => {
            let mut v = kit.vote(x as usize % kit.keys.len(), round, Hash([x; 32]));
            if x.is_multiple_of(2) {
                v.voter = key(kit, x);
            }
            Message::Vote(v)
        }
        2 => {
            let high_qc = qc(kit, round.saturating_sub(1), x, signers);
            let mut t = kit.timeout(x as usize % kit.keys.len(), round, &high_qc);
            if x.is_multiple_of(2) {
                t.tc = Some(kit.tc(round, &high_qc, &[0, 1, 2]));
            }
            Message::Timeout(Box::new(t))
        }
        3 => Message::SyncRequest(SyncRequest {
            from_height: Height(u64::from(x)),
            blocks_max: u32::from(x),
        }),
        _ => Message::SyncResponse(Box::new(SyncResponse {
            blocks: kit.chain_of(u64::from(x % 3)),
            tip_qc: qc(kit, round, x, signers),
        })),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 1..20)) {
        let kit = Kit::new(4);
        let (mut e, _) = kit.engine(0);
        for (i, mut bytes) in chunks.into_iter().enumerate() {
            // Half the time, a valid tag so decoding goes deeper.
            if i % 2 == 0 && bytes.len() >= 4 {
                let tag = u32::from(bytes[4 % bytes.len()] % 5);
                bytes[..4].copy_from_slice(&tag.to_le_bytes());
            }
            let _ = e.handle(Input::Bytes(kit.key(1), bytes));
        }
    }

    #[test]
    fn random_messages_never_panic(
        inputs in prop::collection::vec((any::<u8>(), 0u64..40, any::<u8>(), prop::collection::vec(any::<u8>(), 0..6), any::<u8>()), 1..12)
    ) {
        let kit = Kit::new(4);
        let (mut e, _) = kit.engine(0);
        for (kind, round, x, signers, from) in inputs {
            let msg = message(&kit, kind, round, x, &signers);
            let _ = e.handle(Input::Message(key(&kit, from), msg.clone()));
            let _ = e.handle(Input::Bytes(key(&kit, from), msg.encode()));
            if x.is_multiple_of(7) {
                let _ = e.handle(Input::Timeout(Round(round % 12)));
            }
        }
    }
}
