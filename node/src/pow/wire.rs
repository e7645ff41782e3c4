//! What proof-of-work nodes say to each other. New blocks (header and body) are gossiped on
//! the consensus topic as a bare encoded [`Block`]; sync runs over request-response:
//! `GetHeaders { locator, max }` → `Headers`, `GetBlocks { hashes }` → `Blocks`.
//!
//! Every list has a named bound, checked on decode before anything is looked at.

use cairn_consensus::pow::fork_choice::LOCATOR_HASHES_MAX;
use cairn_ledger::Hash;
use cairn_ledger::block::{BLOCK_BYTES_MAX, Block, BlockHeader, HEADER_BYTES_MAX, check_body};
use cairn_ledger::codec::{self, CodecError};
use serde::{Deserialize, Serialize};

/// Most headers in one `Headers` reply (Bitcoin's figure); a request for more gets this many.
pub const HEADERS_PER_REPLY_MAX: usize = 2000;
/// Most block hashes in one `GetBlocks` request, and blocks in one reply.
pub const BLOCKS_PER_REQUEST_MAX: usize = 64;
/// Largest encoded PoW header: a `Seal::Pow` header is under 200 bytes; the ledger's own
/// bound (room for a BFT certificate) is far above it.
pub const POW_HEADER_BYTES_MAX: usize = 512;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Headers of the responder's chain after the first locator entry it has, at most `max`
    /// (capped at [`HEADERS_PER_REPLY_MAX`]).
    GetHeaders { locator: Vec<Hash>, max: u32 },
    /// Whole blocks by hash, connected or on a side branch; unknown ones are left out.
    GetBlocks { hashes: Vec<Hash> },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Headers(Vec<BlockHeader>),
    Blocks(Vec<Block>),
}

fn malformed(what: &'static str, reason: String) -> CodecError {
    CodecError::Malformed { what, reason }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Request, CodecError> {
        let bound = 64 + LOCATOR_HASHES_MAX.max(BLOCKS_PER_REQUEST_MAX) * Hash::LEN;
        let r: Request = codec::decode(bytes, bound, "pow request")?;
        match &r {
            Request::GetHeaders { locator, .. } if locator.len() > LOCATOR_HASHES_MAX => {
                Err(malformed(
                    "pow request",
                    format!(
                        "locator of {} hashes, over the limit of {LOCATOR_HASHES_MAX}",
                        locator.len()
                    ),
                ))
            }
            Request::GetBlocks { hashes } if hashes.len() > BLOCKS_PER_REQUEST_MAX => {
                Err(malformed(
                    "pow request",
                    format!(
                        "{} block hashes, over the limit of {BLOCKS_PER_REQUEST_MAX}",
                        hashes.len()
                    ),
                ))
            }
            _ => Ok(r),
        }
    }
}

impl Response {
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    /// Decodes a reply of at most `bytes_max` bytes (the network's message bound).
    pub fn decode(bytes: &[u8], bytes_max: usize) -> Result<Response, CodecError> {
        let r: Response = codec::decode(bytes, bytes_max, "pow response")?;
        match &r {
            Response::Headers(h) if h.len() > HEADERS_PER_REPLY_MAX => Err(malformed(
                "pow response",
                format!(
                    "{} headers, over the limit of {HEADERS_PER_REPLY_MAX}",
                    h.len()
                ),
            )),
            Response::Headers(h) => {
                for header in h {
                    check_header_size(header)?;
                }
                Ok(r)
            }
            Response::Blocks(b) if b.len() > BLOCKS_PER_REQUEST_MAX => Err(malformed(
                "pow response",
                format!(
                    "{} blocks, over the limit of {BLOCKS_PER_REQUEST_MAX}",
                    b.len()
                ),
            )),
            Response::Blocks(b) => {
                for block in b {
                    check_header_size(&block.header)?;
                    check_body(&block.transactions)?;
                }
                Ok(r)
            }
        }
    }
}

/// A gossiped block: the ledger's bounded decode, and a PoW-sized header.
pub fn decode_block(bytes: &[u8]) -> Result<Block, CodecError> {
    let block = Block::decode(bytes)?;
    check_header_size(&block.header)?;
    Ok(block)
}

fn check_header_size(header: &BlockHeader) -> Result<(), CodecError> {
    let len = codec::encode(header).len();
    if len > POW_HEADER_BYTES_MAX.min(HEADER_BYTES_MAX) {
        return Err(CodecError::TooLarge {
            what: "pow header",
            len,
            max: POW_HEADER_BYTES_MAX,
        });
    }
    Ok(())
}

/// Bytes a `Blocks` reply may fill: the network bound, less room for framing.
pub fn blocks_reply_budget(message_bytes_max: usize) -> usize {
    message_bytes_max
        .saturating_sub(1024)
        .min(BLOCK_BYTES_MAX * 4)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_over_their_bounds_are_refused_on_decode() {
        let ok = Request::GetHeaders {
            locator: vec![Hash::ZERO; LOCATOR_HASHES_MAX],
            max: 10,
        };
        assert_eq!(Request::decode(&ok.encode()).unwrap(), ok);
        let long = Request::GetHeaders {
            locator: vec![Hash::ZERO; LOCATOR_HASHES_MAX + 1],
            max: 10,
        };
        assert!(Request::decode(&long.encode()).is_err());
        let many = Request::GetBlocks {
            hashes: vec![Hash::ZERO; BLOCKS_PER_REQUEST_MAX + 1],
        };
        assert!(Request::decode(&many.encode()).is_err());
        assert!(Request::decode(&[0xff; 7]).is_err());
    }
}
