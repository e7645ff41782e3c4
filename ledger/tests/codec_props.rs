//! Property tests of the canonical codec on Cairn's own types: every value round-trips; every
//! truncation is refused; and any byte string that decodes at all is exactly the encoding of
//! what it decodes to, so no value has two accepted spellings. Random bytes never panic.

use cairn_ledger::block::{Block, BlockHeader, QuorumCert, Seal};
use cairn_ledger::codec;
use cairn_ledger::tx::{Payload, Transaction};
use cairn_ledger::{
    Address, Amount, Hash, Height, Nonce, ProtocolVersion, PublicKey, Round, Signature, TimestampMs,
};
use proptest::prelude::*;

fn arb_hash() -> impl Strategy<Value = Hash> {
    any::<[u8; 32]>().prop_map(Hash)
}

fn arb_tx() -> impl Strategy<Value = Transaction> {
    (
        "[a-z0-9-]{0,20}",
        any::<[u8; 32]>(),
        any::<u64>(),
        any::<u64>(),
        any::<[u8; 20]>(),
        any::<u64>(),
        prop::collection::vec(any::<u8>(), 64),
    )
        .prop_map(|(chain_id, key, nonce, fee, to, amount, sig)| Transaction {
            chain_id,
            sender: PublicKey(key),
            nonce: Nonce(nonce),
            fee: Amount(fee),
            payload: Payload::Transfer {
                to: Address(to),
                amount: Amount(amount),
            },
            signature: Signature(sig.try_into().unwrap()),
        })
}

fn arb_seal() -> impl Strategy<Value = Seal> {
    prop_oneof![
        Just(Seal::Genesis),
        (any::<u32>(), any::<u64>()).prop_map(|(bits, nonce)| Seal::Pow { bits, nonce }),
        (
            any::<u64>(),
            any::<u64>(),
            arb_hash(),
            prop::collection::vec((any::<[u8; 32]>(), any::<[u8; 32]>()), 0..5)
        )
            .prop_map(|(round, qc_round, block, votes)| Seal::HotStuff {
                round: Round(round),
                justify: QuorumCert {
                    round: Round(qc_round),
                    block,
                    votes: votes
                        .into_iter()
                        .map(|(k, s)| {
                            let mut sig = [0u8; 64];
                            sig[..32].copy_from_slice(&s);
                            (PublicKey(k), Signature(sig))
                        })
                        .collect(),
                },
            }),
    ]
}

fn arb_block() -> impl Strategy<Value = Block> {
    (
        any::<u64>(),
        arb_hash(),
        any::<u64>(),
        arb_hash(),
        arb_hash(),
        any::<[u8; 20]>(),
        any::<u32>(),
        arb_seal(),
        prop::collection::vec(arb_tx(), 0..4),
    )
        .prop_map(
            |(height, parent, ts, tx_root, state_root, proposer, version, seal, transactions)| {
                Block {
                    header: BlockHeader {
                        height: Height(height),
                        parent,
                        timestamp: TimestampMs(ts),
                        tx_root,
                        state_root,
                        proposer: Address(proposer),
                        protocol_version: ProtocolVersion(version),
                        seal,
                    },
                    transactions,
                }
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn transactions_round_trip_and_truncations_are_refused(
        tx in arb_tx(), cut in any::<prop::sample::Index>()
    ) {
        let bytes = tx.encode();
        prop_assert_eq!(Transaction::decode(&bytes).unwrap(), tx);
        let cut = cut.index(bytes.len());
        prop_assert!(Transaction::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn blocks_round_trip_and_truncations_are_refused(
        block in arb_block(), cut in any::<prop::sample::Index>()
    ) {
        let bytes = codec::encode(&block);
        prop_assert_eq!(Block::decode(&bytes).unwrap(), block);
        let cut = cut.index(bytes.len());
        prop_assert!(Block::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn whatever_decodes_is_its_own_canonical_encoding(
        block in arb_block(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = codec::encode(&block);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Ok(decoded) = Block::decode(&bytes) {
            prop_assert_eq!(codec::encode(&decoded), bytes.clone());
        }
        if let Ok(decoded) = BlockHeader::decode(&bytes) {
            prop_assert_eq!(codec::encode(&decoded), bytes);
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        let _ = Transaction::decode(&bytes);
        let _ = Block::decode(&bytes);
        let _ = BlockHeader::decode(&bytes);
    }
}

#[test]
fn trailing_bytes_after_a_transaction_are_refused() {
    let tx = Transaction {
        chain_id: "c".into(),
        sender: PublicKey([1; 32]),
        nonce: Nonce(0),
        fee: Amount(0),
        payload: Payload::Transfer {
            to: Address([2; 20]),
            amount: Amount(1),
        },
        signature: Signature([3; 64]),
    };
    let mut bytes = tx.encode();
    bytes.push(0);
    assert!(Transaction::decode(&bytes).is_err());
}
