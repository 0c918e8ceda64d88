//! Key files: the engine's checkpoint-signing key (kept outside the database)
//! and people's keys (`keys new`). PKCS#8 PEM, mode 0600.
//!
//! The engine key's place is read from the environment (`FIREBREAK_ENGINE_KEY`,
//! `XDG_CONFIG_HOME`, `HOME`) as `contract.md` says, so every face signs with
//! the same key.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use firebreak_ledger::{SigningKey, parse_private_key_pem, private_key_pem};

use crate::AppError;

/// Where the engine key lives: `$FIREBREAK_ENGINE_KEY`, else
/// `$XDG_CONFIG_HOME/firebreak/engine.key`, else `~/.config/firebreak/engine.key`.
pub fn engine_key_path() -> Result<PathBuf, AppError> {
    if let Some(path) = std::env::var_os("FIREBREAK_ENGINE_KEY") {
        return Ok(PathBuf::from(path));
    }
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or(AppError::NoEngineKeyPlace)?)
            .join(".config"),
    };
    Ok(config.join("firebreak").join("engine.key"))
}

/// The engine key, created on first use.
pub fn engine_key() -> Result<SigningKey, AppError> {
    let path = engine_key_path()?;
    if path.exists() {
        return read_key(&path);
    }
    let key = new_key()?;
    write_key(&path, &key)?;
    Ok(key)
}

/// `N` bytes of the operating system's randomness.
fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    let mut bytes = [0u8; N];
    let mut random =
        std::fs::File::open("/dev/urandom").map_err(|e| AppError::io("opening /dev/urandom", e))?;
    std::io::Read::read_exact(&mut random, &mut bytes)
        .map_err(|e| AppError::io("reading /dev/urandom", e))?;
    Ok(bytes)
}

/// 32 random bytes as 64 hex digits (secrets: tokens, session ids); `short`
/// gives 12 digits (public ids).
pub fn random_hex(short: bool) -> Result<String, AppError> {
    let bytes = random_bytes::<32>()?;
    let take = if short { 6 } else { 32 };
    Ok(bytes[..take].iter().map(|b| format!("{b:02x}")).collect())
}

/// A new key from the operating system's randomness.
pub fn new_key() -> Result<SigningKey, AppError> {
    Ok(SigningKey::from_bytes(&random_bytes::<32>()?))
}

/// Reads a PEM private key.
pub fn read_key(path: &Path) -> Result<SigningKey, AppError> {
    let pem = std::fs::read_to_string(path)
        .map_err(|e| AppError::io(format!("reading key {}", path.display()), e))?;
    parse_private_key_pem(&pem).map_err(|reason| AppError::BadFile {
        path: path.to_path_buf(),
        reason,
    })
}

/// Writes a private key as PEM with mode 0600, refusing to overwrite.
pub fn write_key(path: &Path, key: &SigningKey) -> Result<(), AppError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| AppError::io(format!("creating {}", dir.display()), e))?;
    }
    let pem = private_key_pem(key).map_err(|reason| AppError::BadFile {
        path: path.to_path_buf(),
        reason,
    })?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            AppError::io(
                format!(
                    "creating key file {} (it must not exist yet)",
                    path.display()
                ),
                e,
            )
        })?;
    file.write_all(pem.as_bytes())
        .map_err(|e| AppError::io(format!("writing {}", path.display()), e))
}
