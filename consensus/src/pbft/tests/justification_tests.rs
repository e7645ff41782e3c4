//! The round-change justification rules (IBFT 2.0 / QBFT): what a round-change certificate
//! must show, and which block a proposal justified by it must offer.

use super::*;
use crate::bft::Ed25519Verifier;

fn check(
    kit: &Kit,
    height: u64,
    round: u64,
    cert: &RoundChangeCert,
) -> Result<Option<Hash>, CertError> {
    CertChecker::new(kit.chain).verify_justification(
        Height(height),
        Round(round),
        cert,
        &kit.validators,
        &Ed25519Verifier,
    )
}

#[test]
fn a_quorum_without_claims_leaves_the_proposer_free() {
    let kit = Kit::new(4);
    let rcs: Vec<_> = (0..3)
        .map(|i| kit.round_change(i, 1, 1, None, None))
        .collect();
    assert_eq!(check(&kit, 1, 1, &kit.justification(1, &rcs)), Ok(None));
}

#[test]
fn the_highest_prepared_claim_names_the_block() {
    let kit = Kit::new(4);
    let (a, b) = (kit.first_block(0, 1).hash(), kit.first_block(1, 2).hash());
    let low = kit.prepare_cert(1, 0, a, &[0, 1, 2]);
    let high = kit.prepare_cert(1, 1, b, &[1, 2, 3]);
    let rcs = vec![
        kit.round_change(0, 1, 2, Some(low), None),
        kit.round_change(1, 1, 2, Some(high.clone()), None),
        kit.round_change(2, 1, 2, None, None),
    ];
    assert_eq!(check(&kit, 1, 2, &kit.justification(2, &rcs)), Ok(Some(b)));
}

#[test]
fn a_certificate_must_carry_the_highest_claims_prepare_certificate() {
    let kit = Kit::new(4);
    let (a, b) = (kit.first_block(0, 1).hash(), kit.first_block(1, 2).hash());
    let low = kit.prepare_cert(1, 0, a, &[0, 1, 2]);
    let high = kit.prepare_cert(1, 1, b, &[1, 2, 3]);
    let rcs = vec![
        kit.round_change(0, 1, 2, Some(low.clone()), None),
        kit.round_change(1, 1, 2, Some(high), None),
        kit.round_change(2, 1, 2, None, None),
    ];
    // Hiding the higher claim behind the lower certificate.
    let mut cert = kit.justification(2, &rcs);
    cert.prepared = Some(low);
    assert!(matches!(
        check(&kit, 1, 2, &cert),
        Err(CertError::PreparedMismatch { .. })
    ));
    // Dropping the certificate altogether.
    cert.prepared = None;
    assert!(matches!(
        check(&kit, 1, 2, &cert),
        Err(CertError::PreparedMismatch { .. })
    ));
    // A certificate nobody claimed.
    let none: Vec<_> = (0..3)
        .map(|i| kit.round_change(i, 1, 2, None, None))
        .collect();
    let mut cert = kit.justification(2, &none);
    cert.prepared = Some(kit.prepare_cert(1, 0, a, &[0, 1, 2]));
    assert!(matches!(
        check(&kit, 1, 2, &cert),
        Err(CertError::PreparedMismatch { .. })
    ));
}

#[test]
fn a_forged_prepare_certificate_or_too_little_power_is_refused() {
    let kit = Kit::new(4);
    let a = kit.first_block(0, 1).hash();
    // Two prepares are not a quorum of four.
    let thin = kit.prepare_cert(1, 0, a, &[0, 1]);
    let rcs = vec![
        kit.round_change(0, 1, 1, Some(thin), None),
        kit.round_change(1, 1, 1, None, None),
        kit.round_change(2, 1, 1, None, None),
    ];
    assert!(matches!(
        check(&kit, 1, 1, &kit.justification(1, &rcs)),
        Err(CertError::InsufficientPower {
            what: "prepare certificate",
            ..
        })
    ));
    // Two round changes are not a quorum either.
    let two: Vec<_> = (0..2)
        .map(|i| kit.round_change(i, 1, 1, None, None))
        .collect();
    assert!(matches!(
        check(&kit, 1, 1, &kit.justification(1, &two)),
        Err(CertError::InsufficientPower {
            what: "round-change certificate",
            ..
        })
    ));
    // One round change counted twice.
    let twice = vec![two[0].clone(), two[0].clone(), two[1].clone()];
    assert!(matches!(
        check(&kit, 1, 1, &kit.justification(1, &twice)),
        Err(CertError::DuplicateSigner { .. })
    ));
    // A signature over another round.
    let mut wrong = (0..3)
        .map(|i| kit.round_change(i, 1, 1, None, None))
        .collect::<Vec<_>>();
    wrong[2] = kit.round_change(2, 1, 3, None, None);
    let mut cert = kit.justification(1, &wrong);
    cert.round = Round(1);
    assert!(matches!(
        check(&kit, 1, 1, &cert),
        Err(CertError::BadSignature { .. })
    ));
    // A claim whose signature does not cover it.
    let mut lied = kit.justification(
        1,
        &(0..3)
            .map(|i| kit.round_change(i, 1, 1, None, None))
            .collect::<Vec<_>>(),
    );
    lied.signatures[0].prepared = Some(PreparedClaim {
        round: Round(0),
        block: a,
    });
    lied.prepared = Some(kit.prepare_cert(1, 0, a, &[0, 1, 2]));
    assert!(matches!(
        check(&kit, 1, 1, &lied),
        Err(CertError::BadSignature { .. })
    ));
}

#[test]
fn certificates_are_bound_to_their_round_and_height() {
    let kit = Kit::new(4);
    let rcs: Vec<_> = (0..3)
        .map(|i| kit.round_change(i, 1, 2, None, None))
        .collect();
    let cert = kit.justification(2, &rcs);
    assert!(matches!(
        check(&kit, 1, 3, &cert),
        Err(CertError::WrongRound { .. })
    ));
    assert!(matches!(
        check(&kit, 2, 2, &cert),
        Err(CertError::BadSignature { .. })
    ));
    assert_eq!(check(&kit, 1, 0, &cert), Err(CertError::RoundZero));
    // A prepare certificate from the round it justifies, or later, proves nothing about it.
    let a = kit.first_block(0, 1).hash();
    let same = kit.prepare_cert(1, 2, a, &[0, 1, 2]);
    let rcs = vec![
        kit.round_change(0, 1, 2, Some(same), None),
        kit.round_change(1, 1, 2, None, None),
        kit.round_change(2, 1, 2, None, None),
    ];
    assert!(matches!(
        check(&kit, 1, 2, &kit.justification(2, &rcs)),
        Err(CertError::PreparedNotBelow { .. })
    ));
}

#[test]
fn a_proposal_must_offer_the_block_its_round_changes_name() {
    let kit = Kit::new(4);
    let p = kit.proposer(1, 1);
    let v = (0..4).find(|&i| i != p).unwrap();
    let (mut e, _) = kit.engine(v);
    let prepared = kit.first_block(kit.proposer(1, 0), 1);
    let qc = kit.prepare_cert(1, 0, prepared.hash(), &[0, 1, 2]);
    let rcs = vec![
        kit.round_change(0, 1, 1, Some(qc), Some(prepared.clone())),
        kit.round_change(1, 1, 1, None, None),
        kit.round_change(2, 1, 1, None, None),
    ];
    let cert = kit.justification(1, &rcs);
    let fresh = kit.first_block(p, 99);
    let fx = e.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(p, 1, 1, fresh, Some(cert.clone())))),
    ));
    assert_eq!(drops(&fx), ["not_the_prepared_block"]);
    // The same certificate with the prepared block is accepted, moving the validator to
    // round 1 and on to a prepare.
    let fx = e.handle(Input::Message(
        kit.key(p),
        Message::Proposal(Box::new(kit.proposal(
            p,
            1,
            1,
            prepared.clone(),
            Some(cert),
        ))),
    ));
    assert!(drops(&fx).is_empty(), "{:?}", dropped(&fx));
    assert_eq!(e.current_round(), Round(1));
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Validate { block } if *block == prepared.hash()))
    );
}

#[test]
fn the_proposer_re_proposes_the_highest_prepared_block_it_was_shown() {
    let kit = Kit::new(4);
    let p = kit.proposer(1, 1);
    let (mut e, _) = kit.engine(p);
    let prepared = kit.first_block(kit.proposer(1, 0), 1);
    let qc = kit.prepare_cert(1, 0, prepared.hash(), &[0, 1, 2]);
    let others: Vec<usize> = (0..4).filter(|&i| i != p).collect();
    let mut fx = e.handle(Input::Timeout {
        height: Height(1),
        round: Round(0),
    });
    fx.extend(e.handle(Input::Message(
        kit.key(others[0]),
        Message::RoundChange(Box::new(kit.round_change(
            others[0],
            1,
            1,
            Some(qc),
            Some(prepared.clone()),
        ))),
    )));
    fx.extend(e.handle(Input::Message(
        kit.key(others[1]),
        Message::RoundChange(Box::new(kit.round_change(others[1], 1, 1, None, None))),
    )));
    assert!(
        !fx.iter()
            .any(|f| matches!(f, Effect::RequestPayload { .. })),
        "asked for a new block"
    );
    let proposal = broadcasts(&fx)
        .into_iter()
        .find_map(|m| match m {
            Message::Proposal(p) => Some(p.clone()),
            _ => None,
        })
        .expect("no proposal");
    assert_eq!(proposal.block.hash(), prepared.hash());
    assert_eq!(proposal.round, Round(1));
    assert!(proposal.justification.as_ref().unwrap().prepared.is_some());
}
