//! Signed checkpoints and the Ed25519 keys that sign them.
//!
//! A checkpoint states "the ledger's first `tree_size` entries have Merkle root
//! `root`", signed by the engine's key, which lives outside the database. Kept
//! somewhere an attacker cannot write (printed, published, copied off the
//! machine), it exposes a history rewritten with every hash recomputed.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use firebreak_core::{Timestamp, format_rfc3339};
use serde::{Deserialize, Serialize};

use crate::entry::{Hash, canonical_json, hex};

/// The domain separator of checkpoint signatures.
pub const CHECKPOINT_DOMAIN: &[u8] = b"firebreak checkpoint v1\n";

/// A signed statement of the ledger's Merkle root at a size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Format version, 1.
    pub v: u32,
    /// How many entries the tree covers.
    pub tree_size: u64,
    /// Hex of the RFC 6962 root of those entries.
    pub root: String,
    /// When it was signed (RFC 3339).
    pub at: String,
    /// The signer's public key, `ed25519:` + base64.
    pub key: String,
    /// Base64 of the Ed25519 signature over `CHECKPOINT_DOMAIN ‖ JCS({at, root, tree_size, v})`.
    pub signature: String,
}

#[derive(Serialize)]
struct Signed<'a> {
    v: u32,
    tree_size: u64,
    root: &'a str,
    at: &'a str,
}

fn message(v: u32, tree_size: u64, root: &str, at: &str) -> Vec<u8> {
    let body = canonical_json(&Signed {
        v,
        tree_size,
        root,
        at,
    })
    // Cannot fail: two integers and two strings, with no float to be non-finite
    // and no map to repeat a key.
    .expect("a checkpoint message always canonicalises");
    [CHECKPOINT_DOMAIN, body.as_bytes()].concat()
}

impl Checkpoint {
    /// Signs the root of the first `tree_size` entries.
    pub fn sign(key: &SigningKey, tree_size: u64, root: &Hash, at: Timestamp) -> Checkpoint {
        let (root, at) = (hex(root), format_rfc3339(at));
        let signature = key.sign(&message(1, tree_size, &root, &at));
        Checkpoint {
            v: 1,
            tree_size,
            root,
            at,
            key: public_key_string(&key.verifying_key()),
            signature: STANDARD.encode(signature.to_bytes()),
        }
    }

    /// Checks the signature against the key the checkpoint names.
    pub fn verify_signature(&self) -> Result<(), String> {
        let message = message(self.v, self.tree_size, &self.root, &self.at);
        if verify_signature(&self.key, &self.signature, &message)? {
            Ok(())
        } else {
            Err(format!(
                "the signature of the checkpoint at tree size {} does not verify",
                self.tree_size
            ))
        }
    }
}

/// Whether the base64 Ed25519 `signature` by the `ed25519:` `key` verifies over
/// `message`; `Err` when the key or the signature cannot be read.
pub(crate) fn verify_signature(key: &str, signature: &str, message: &[u8]) -> Result<bool, String> {
    let key = parse_public_key(key)?;
    let bytes = STANDARD
        .decode(signature)
        .map_err(|e| format!("signature is not base64: {e}"))?;
    let signature = ed25519_dalek::Signature::from_slice(&bytes)
        .map_err(|e| format!("signature is malformed: {e}"))?;
    Ok(key.verify(message, &signature).is_ok())
}

/// `ed25519:` followed by the standard base64 of the 32-byte key.
pub fn public_key_string(key: &VerifyingKey) -> String {
    format!("ed25519:{}", STANDARD.encode(key.to_bytes()))
}

/// Parses `ed25519:<base64>`.
pub fn parse_public_key(text: &str) -> Result<VerifyingKey, String> {
    let b64 = text
        .strip_prefix("ed25519:")
        .ok_or_else(|| format!("{text:?} is not an `ed25519:` public key"))?;
    let bytes: [u8; 32] = STANDARD
        .decode(b64)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| format!("{text:?} does not hold 32 bytes of base64"))?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("{text:?} is not a valid Ed25519 key: {e}"))
}

/// A private key as a PKCS#8 PEM document.
pub fn private_key_pem(key: &SigningKey) -> Result<String, String> {
    key.to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map(|pem| pem.to_string())
        .map_err(|e| format!("cannot encode the key: {e}"))
}

/// Reads a PKCS#8 PEM private key.
pub fn parse_private_key_pem(pem: &str) -> Result<SigningKey, String> {
    SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| format!("not a PKCS#8 PEM Ed25519 private key: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_verify_and_tampering_breaks_them() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let checkpoint = Checkpoint::sign(&key, 5, &[1u8; 32], 0);
        assert_eq!(checkpoint.verify_signature(), Ok(()));
        let mut forged = checkpoint.clone();
        forged.tree_size = 4;
        assert!(forged.verify_signature().is_err());
        let pem = private_key_pem(&key).expect("pem");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_eq!(
            parse_private_key_pem(&pem).expect("parsed").to_bytes(),
            key.to_bytes()
        );
        assert_eq!(
            parse_public_key(&checkpoint.key).expect("key"),
            key.verifying_key()
        );
    }
}
