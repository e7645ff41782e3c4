//! Key files on disk and libp2p peer ids.
//!
//! This module owns the on-disk format of a node's or user's ed25519 key and the mapping
//! from a public key to its libp2p peer id. It must never put secret key bytes into an
//! error message or a log line, never overwrite an existing key file, and never accept a
//! key file that other users can read.
//!
//! A key file is one JSON object:
//!
//! ```json
//! {
//!   "type": "ed25519",
//!   "public_key": "<64 hex digits>",
//!   "secret_key": "<64 hex digits>"
//! }
//! ```
//!
//! The public key is stored although it follows from the secret key, so that a file that was
//! damaged or edited is caught on load instead of silently becoming a different identity.
//!
//! The peer id is computed here rather than with libp2p so that the ledger (and `cairn keys`,
//! `cairn genesis`) need not depend on the network stack: an ed25519 key is short enough that
//! libp2p embeds it whole (identity multihash), so the peer id is a fixed byte layout.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::crypto::Keypair;
use crate::types::PublicKey;

/// The only value of the `type` field Cairn writes or accepts.
pub const KEY_TYPE_ED25519: &str = "ed25519";

/// Largest key file read. A real one is under 200 bytes; the bound keeps a wrong path (a
/// log, a device) from being read into memory whole.
pub const KEY_FILE_BYTES_MAX: u64 = 4 * 1024;

/// Longest string [`parse_peer_id`] looks at: an ed25519 peer id is 52 characters.
pub const PEER_ID_CHARS_MAX: usize = 128;

/// Bytes before the key in a peer id: multihash code 0x00 (identity) and length 36, then
/// the protobuf `PublicKey { Type = Ed25519 (field 1, varint 1), Data (field 2, 32 bytes) }`.
const PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
const PEER_ID_LEN: usize = PEER_ID_PREFIX.len() + PublicKey::LEN;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(
        "refusing to overwrite the existing key file {}; move it away or choose another path",
        path.display()
    )]
    AlreadyExists { path: PathBuf },
    #[error("cannot create the directory {} for a key file: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write key file {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read key file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "key file {} is {len} bytes, over the limit of {max} bytes; is this really a key file?",
        path.display()
    )]
    TooLarge { path: PathBuf, len: u64, max: u64 },
    #[error(
        "key file {} is readable by other users (mode {mode:04o}); run `chmod 600 {}` and keep \
         the key secret",
        path.display(),
        path.display()
    )]
    InsecurePermissions { path: PathBuf, mode: u32 },
    #[error(
        "key file {} is not a key file ({message}); expected a JSON object with fields \
         \"type\", \"public_key\" and \"secret_key\"",
        path.display()
    )]
    Format { path: PathBuf, message: String },
    #[error(
        "key file {}: field \"type\" is {found:?}, but only \"ed25519\" keys are supported",
        path.display()
    )]
    UnknownType { path: PathBuf, found: String },
    #[error("key file {}: field \"{field}\" {reason}", path.display())]
    BadHex {
        path: PathBuf,
        field: &'static str,
        reason: String,
    },
    #[error(
        "key file {}: field \"{field}\" has {found} hex digits, but an ed25519 key is 64 hex \
         digits (32 bytes)",
        path.display()
    )]
    WrongLength {
        path: PathBuf,
        field: &'static str,
        found: usize,
    },
    #[error(
        "key file {}: field \"public_key\" ({stored}) does not match the secret key, whose \
         public key is {derived}; the file is damaged or was edited",
        path.display()
    )]
    PublicKeyMismatch {
        path: PathBuf,
        stored: PublicKey,
        derived: PublicKey,
    },
    #[error("{value:?} is not an ed25519 libp2p peer id: {reason}")]
    InvalidPeerId { value: String, reason: String },
}

/// The libp2p peer id of an ed25519 key, in its base58btc text form (`12D3KooW…`).
pub fn peer_id(key: &PublicKey) -> String {
    let mut bytes = [0u8; PEER_ID_LEN];
    bytes[..PEER_ID_PREFIX.len()].copy_from_slice(&PEER_ID_PREFIX);
    bytes[PEER_ID_PREFIX.len()..].copy_from_slice(key.as_bytes());
    bs58::encode(bytes).into_string()
}

/// The ed25519 key embedded in a peer id made by [`peer_id`] (or by libp2p). Other kinds of
/// peer id (RSA, secp256k1, SHA-256 multihashes) are refused: they are not Cairn keys.
pub fn parse_peer_id(s: &str) -> Result<PublicKey, KeyError> {
    let invalid = |reason: String| KeyError::InvalidPeerId {
        value: truncate(s, PEER_ID_CHARS_MAX),
        reason,
    };
    if s.len() > PEER_ID_CHARS_MAX {
        return Err(invalid(format!(
            "it is {} characters long; an ed25519 peer id is 52",
            s.len()
        )));
    }
    let bytes = bs58::decode(s)
        .into_vec()
        .map_err(|e| invalid(format!("not base58: {e}")))?;
    if bytes.starts_with(&[0x12, 0x20]) {
        return Err(invalid(
            "it is a SHA-256 peer id, which does not contain the key; Cairn peers use ed25519 \
             keys, whose peer ids start with 12D3KooW"
                .into(),
        ));
    }
    if bytes.len() != PEER_ID_LEN || !bytes.starts_with(&PEER_ID_PREFIX) {
        return Err(invalid(
            "it is not an identity multihash of an ed25519 public key (those start with 12D3KooW)"
                .into(),
        ));
    }
    let mut key = [0u8; PublicKey::LEN];
    key.copy_from_slice(&bytes[PEER_ID_PREFIX.len()..]);
    Ok(PublicKey(key))
}

/// The JSON shape of a key file. No `Debug`: it holds the secret.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(rename = "type")]
    key_type: String,
    public_key: String,
    secret_key: String,
}

/// Writes `key` to a new file at `path`, readable only by its owner, creating missing parent
/// directories (owner-only too, since they hold keys). An existing file is never replaced:
/// overwriting a key by mistake loses an identity, and maybe funds, for good.
pub fn write_key_file(path: &Path, key: &Keypair) -> Result<(), KeyError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(parent)
            .map_err(|source| KeyError::CreateDir {
                path: parent.to_path_buf(),
                source,
            })?;
    }
    // The mode is given at creation so the secret is never in a file others could open,
    // not even for the moment between create and chmod; create_new makes the existence
    // check and the creation one step.
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => KeyError::AlreadyExists {
                path: path.to_path_buf(),
            },
            _ => KeyError::Write {
                path: path.to_path_buf(),
                source,
            },
        })?;

    let mut secret_hex = hex::encode(key.secret_bytes());
    let contents = KeyFile {
        key_type: KEY_TYPE_ED25519.to_string(),
        public_key: key.public().to_string(),
        secret_key: secret_hex.clone(),
    };
    // Sized up front so the buffer holding the secret is not reallocated (leaving copies
    // behind) and can be wiped afterwards.
    let mut json = Vec::with_capacity(512);
    serde_json::to_writer_pretty(&mut json, &contents).expect("a key file serialises");
    json.push(b'\n');
    let written = file
        .write_all(&json)
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_parent_dir(path));
    wipe(&mut json);
    wipe_string(&mut secret_hex);
    let KeyFile { mut secret_key, .. } = contents;
    wipe_string(&mut secret_key);

    if let Err(source) = written {
        // A half-written key file would make the retry fail with "already exists".
        drop(file);
        let _ = fs::remove_file(path);
        return Err(KeyError::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(())
}

/// Reads and checks a key file written by [`write_key_file`]. Every error names the file and,
/// where one is to blame, the field; none contains secret key material.
pub fn read_key_file(path: &Path) -> Result<Keypair, KeyError> {
    let read_error = |source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(read_error)?;
    // Checked on the open file, not the path, so the file read is the file checked.
    let metadata = file.metadata().map_err(read_error)?;
    if !metadata.is_file() {
        return Err(read_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = metadata.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(KeyError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if metadata.len() > KEY_FILE_BYTES_MAX {
        return Err(KeyError::TooLarge {
            path: path.to_path_buf(),
            len: metadata.len(),
            max: KEY_FILE_BYTES_MAX,
        });
    }
    let mut raw = Vec::with_capacity(KEY_FILE_BYTES_MAX as usize + 1);
    file.take(KEY_FILE_BYTES_MAX + 1)
        .read_to_end(&mut raw)
        .map_err(read_error)?;
    let parsed = parse_key_json(path, &raw);
    wipe(&mut raw);
    parsed
}

fn parse_key_json(path: &Path, raw: &[u8]) -> Result<Keypair, KeyError> {
    if raw.len() as u64 > KEY_FILE_BYTES_MAX {
        // The file grew between the size check and the read.
        return Err(KeyError::TooLarge {
            path: path.to_path_buf(),
            len: raw.len() as u64,
            max: KEY_FILE_BYTES_MAX,
        });
    }
    // serde_json's messages name the line and column and never quote a string value, and
    // every field is a string, so no secret can appear in them.
    let mut file: KeyFile = serde_json::from_slice(raw).map_err(|e| KeyError::Format {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let result = check_key_file(path, &file);
    wipe_string(&mut file.secret_key);
    result
}

fn check_key_file(path: &Path, file: &KeyFile) -> Result<Keypair, KeyError> {
    if file.key_type != KEY_TYPE_ED25519 {
        return Err(KeyError::UnknownType {
            path: path.to_path_buf(),
            found: truncate(&file.key_type, 32),
        });
    }
    let mut secret = decode_key_hex(path, "secret_key", &file.secret_key)?;
    let stored = PublicKey(decode_key_hex(path, "public_key", &file.public_key)?);
    let keypair = Keypair::from_secret(&secret);
    wipe(&mut secret);
    let derived = keypair.public();
    if derived != stored {
        return Err(KeyError::PublicKeyMismatch {
            path: path.to_path_buf(),
            stored,
            derived,
        });
    }
    Ok(keypair)
}

/// 32 bytes from 64 hex digits (an optional `0x` allowed). The errors say where the bad digit
/// is but never what it is: it may be a mistyped digit of the secret.
fn decode_key_hex(path: &Path, field: &'static str, value: &str) -> Result<[u8; 32], KeyError> {
    let digits = value.strip_prefix("0x").unwrap_or(value);
    if digits.len() != 64 {
        return Err(KeyError::WrongLength {
            path: path.to_path_buf(),
            field,
            found: digits.len(),
        });
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(digits, &mut out).map_err(|e| {
        let reason = match e {
            hex::FromHexError::InvalidHexCharacter { index, .. } => {
                format!("is not hex: character {} is not a hex digit", index + 1)
            }
            _ => "is not hex".to_string(),
        };
        KeyError::BadHex {
            path: path.to_path_buf(),
            field,
            reason,
        }
    })?;
    Ok(out)
}

/// Makes the new directory entry durable too, so a crash right after writing a key cannot
/// leave the file missing.
fn sync_parent_dir(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => File::open(p)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

/// Best-effort erasure of secret material before memory is freed; `black_box` keeps the
/// compiler from dropping the writes as dead stores.
fn wipe(buf: &mut [u8]) {
    buf.fill(0);
    std::hint::black_box(buf);
}

fn wipe_string(s: &mut String) {
    let mut bytes = std::mem::take(s).into_bytes();
    wipe(&mut bytes);
}

/// At most `max` characters of untrusted text, for error messages.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;

    // The ed25519 test vector of the libp2p peer-id spec (specs/peer-ids/peer-ids.md): its
    // private key protobuf is 08011240 ‖ secret ‖ public. The peer id is that spec key's id
    // as libp2p prints it.
    const SPEC_SECRET: &str = "7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d";
    const SPEC_PUBLIC: &str = "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
    const SPEC_PEER_ID: &str = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";

    fn keypair(seed: u64) -> Keypair {
        Keypair::generate(&mut rand_chacha::ChaCha20Rng::seed_from_u64(seed))
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    /// Writes arbitrary contents as a key file with safe permissions.
    fn write_raw(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let path = dir.join(name);
        fs::write(&path, contents).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn json(key_type: &str, public: &str, secret: &str) -> String {
        format!(r#"{{"type":"{key_type}","public_key":"{public}","secret_key":"{secret}"}}"#)
    }

    #[test]
    fn peer_id_matches_the_libp2p_spec_vector() {
        let mut secret = [0u8; 32];
        hex::decode_to_slice(SPEC_SECRET, &mut secret).unwrap();
        let kp = Keypair::from_secret(&secret);
        assert_eq!(kp.public().to_string(), SPEC_PUBLIC);
        assert_eq!(peer_id(&kp.public()), SPEC_PEER_ID);
        assert_eq!(parse_peer_id(SPEC_PEER_ID).unwrap(), kp.public());
    }

    #[test]
    fn peer_id_round_trips_and_has_the_ed25519_prefix() {
        for seed in 0..20 {
            let key = keypair(seed).public();
            let id = peer_id(&key);
            assert!(id.starts_with("12D3KooW"), "{id}");
            assert_eq!(id.len(), 52);
            assert_eq!(parse_peer_id(&id).unwrap(), key);
        }
    }

    #[test]
    fn parse_peer_id_rejects_other_kinds_of_id() {
        let cases = [
            ("", "not an identity multihash"),
            ("0OIl", "not base58"),
            // A SHA-256 (RSA-style) peer id.
            ("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", "SHA-256"),
            // A secp256k1 peer id.
            (
                "16Uiu2HAkumpXRXoTBqw95zvfqiSVb9WfHUojnsa5DTDHz1cWRoDn",
                "not an identity",
            ),
        ];
        for (input, expected) in cases {
            let err = parse_peer_id(input).unwrap_err();
            assert!(matches!(err, KeyError::InvalidPeerId { .. }), "{input}");
            assert!(err.to_string().contains(expected), "{input}: {err}");
        }
        let long = "1".repeat(10_000);
        assert!(
            parse_peer_id(&long)
                .unwrap_err()
                .to_string()
                .contains("10000 characters")
        );
        // Truncated and extended versions of a good id.
        assert!(parse_peer_id(&SPEC_PEER_ID[..51]).is_err());
        assert!(parse_peer_id(&format!("{SPEC_PEER_ID}1")).is_err());
    }

    #[test]
    fn write_then_read_round_trips_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/node.key");
        let kp = keypair(1);
        write_key_file(&path, &kp).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(&dir.path().join("a/b")), 0o700);
        let back = read_key_file(&path).unwrap();
        assert_eq!(back.public(), kp.public());
        assert_eq!(back.secret_bytes(), kp.secret_bytes());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.ends_with("}\n"));
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "ed25519");
        assert_eq!(value["public_key"], kp.public().to_string());
        assert_eq!(value["secret_key"], hex::encode(kp.secret_bytes()));
    }

    #[test]
    fn write_refuses_to_overwrite_and_keeps_the_old_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        write_key_file(&path, &keypair(1)).unwrap();
        let err = write_key_file(&path, &keypair(2)).unwrap_err();
        assert!(matches!(err, KeyError::AlreadyExists { .. }), "{err:?}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert!(err.to_string().contains("refusing to overwrite"));
        assert_eq!(read_key_file(&path).unwrap().public(), keypair(1).public());
    }

    #[test]
    fn bare_file_name_syncs_the_current_directory() {
        // A bare name's parent is "", which is the current directory, not a path to open.
        assert!(sync_parent_dir(Path::new("relative-name")).is_ok());
    }

    #[test]
    fn group_or_world_readable_file_is_refused_with_a_chmod_hint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        write_key_file(&path, &keypair(1)).unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = read_key_file(&path).unwrap_err();
            assert!(
                matches!(err, KeyError::InsecurePermissions { mode: m, .. } if m == mode),
                "{err:?}"
            );
            let msg = err.to_string();
            assert!(
                msg.contains(&format!("chmod 600 {}", path.display())),
                "{msg}"
            );
        }
    }

    #[test]
    fn malformed_files_give_the_right_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let kp = keypair(7);
        let public = kp.public().to_string();
        let secret = hex::encode(kp.secret_bytes());
        let other_public = keypair(8).public().to_string();
        let good = json("ed25519", &public, &secret);

        type Check = fn(&KeyError) -> bool;
        let cases: Vec<(&str, Vec<u8>, Check, &str)> = vec![
            (
                "garbage",
                vec![0xff, 0x00, 0x13, 0x37],
                |e| matches!(e, KeyError::Format { .. }),
                "line 1",
            ),
            (
                "empty",
                vec![],
                |e| matches!(e, KeyError::Format { .. }),
                "EOF",
            ),
            (
                "truncated",
                good.as_bytes()[..good.len() / 2].to_vec(),
                |e| matches!(e, KeyError::Format { .. }),
                "line 1 column",
            ),
            (
                "array",
                b"[1, 2, 3]".to_vec(),
                |e| matches!(e, KeyError::Format { .. }),
                "expected a JSON object",
            ),
            (
                "unknown-field",
                format!(
                    r#"{{"type":"ed25519","public_key":"{public}","secret_key":"{secret}","x":1}}"#
                )
                .into_bytes(),
                |e| matches!(e, KeyError::Format { .. }),
                "unknown field `x`",
            ),
            (
                "missing-field",
                format!(r#"{{"type":"ed25519","public_key":"{public}"}}"#).into_bytes(),
                |e| matches!(e, KeyError::Format { .. }),
                "missing field `secret_key`",
            ),
            (
                "wrong-type",
                json("secp256k1", &public, &secret).into_bytes(),
                |e| matches!(e, KeyError::UnknownType { .. }),
                "\"secp256k1\"",
            ),
            (
                "bad-hex-secret",
                json("ed25519", &public, &format!("zz{}", &secret[2..])).into_bytes(),
                |e| {
                    matches!(
                        e,
                        KeyError::BadHex {
                            field: "secret_key",
                            ..
                        }
                    )
                },
                "\"secret_key\" is not hex: character 1",
            ),
            (
                "bad-hex-public",
                json("ed25519", &format!("{}g", &public[..63]), &secret).into_bytes(),
                |e| {
                    matches!(
                        e,
                        KeyError::BadHex {
                            field: "public_key",
                            ..
                        }
                    )
                },
                "\"public_key\" is not hex: character 64",
            ),
            (
                "short-secret",
                json("ed25519", &public, &secret[..62]).into_bytes(),
                |e| {
                    matches!(
                        e,
                        KeyError::WrongLength {
                            field: "secret_key",
                            found: 62,
                            ..
                        }
                    )
                },
                "62 hex digits",
            ),
            (
                "short-public",
                json("ed25519", &public[..10], &secret).into_bytes(),
                |e| {
                    matches!(
                        e,
                        KeyError::WrongLength {
                            field: "public_key",
                            found: 10,
                            ..
                        }
                    )
                },
                "\"public_key\" has 10 hex digits",
            ),
            (
                "mismatch",
                json("ed25519", &other_public, &secret).into_bytes(),
                |e| matches!(e, KeyError::PublicKeyMismatch { .. }),
                "does not match",
            ),
            (
                "too-large",
                vec![b' '; KEY_FILE_BYTES_MAX as usize + 1],
                |e| matches!(e, KeyError::TooLarge { .. }),
                "over the limit",
            ),
        ];
        for (name, contents, check, needle) in cases {
            let path = write_raw(dir.path(), name, &contents);
            let err = read_key_file(&path).unwrap_err();
            assert!(check(&err), "{name}: wrong variant {err:?}");
            let msg = err.to_string();
            assert!(msg.contains(&path.display().to_string()), "{name}: {msg}");
            assert!(msg.contains(needle), "{name}: {msg:?} lacks {needle:?}");
            assert!(
                !msg.contains(&secret[4..60]),
                "{name}: secret leaked: {msg}"
            );
            assert!(
                !format!("{err:?}").contains(&secret[4..60]),
                "{name}: secret in Debug"
            );
        }
        let path = write_raw(dir.path(), "good", good.as_bytes());
        assert_eq!(read_key_file(&path).unwrap().public(), kp.public());
    }

    #[test]
    fn missing_file_and_directory_are_read_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.key");
        let err = read_key_file(&missing).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }));
        assert!(err.to_string().contains(&missing.display().to_string()));
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let err = read_key_file(dir.path()).unwrap_err();
        assert!(matches!(err, KeyError::Read { .. }), "{err:?}");
        assert!(err.to_string().contains("not a regular file"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn random_key_file_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = write_raw(dir.path(), "k", &bytes);
            let _ = read_key_file(&path);
        }

        #[test]
        fn random_json_fields_never_panic(
            t in ".{0,10}",
            p in "[0-9a-fx]{0,70}",
            s in "[0-9a-fA-Z]{0,70}",
        ) {
            let dir = tempfile::tempdir().unwrap();
            let contents = json(&t.replace(['"', '\\'], ""), &p, &s);
            let path = write_raw(dir.path(), "k", contents.as_bytes());
            let _ = read_key_file(&path);
        }

        #[test]
        fn random_peer_id_strings_never_panic(s in ".{0,80}") {
            let _ = parse_peer_id(&s);
        }
    }
}
