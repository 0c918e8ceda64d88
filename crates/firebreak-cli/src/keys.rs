//! Key files: the engine's checkpoint-signing key (outside the database) and
//! people's keys made by `keys new`. PKCS#8 PEM, mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use firebreak_ledger::{SigningKey, parse_private_key_pem, private_key_pem};

/// Where the engine key lives: `$FIREBREAK_ENGINE_KEY`, else
/// `$XDG_CONFIG_HOME/firebreak/engine.key`, else `~/.config/firebreak/engine.key`.
pub fn engine_key_path() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("FIREBREAK_ENGINE_KEY") {
        return Ok(PathBuf::from(path));
    }
    let config = match std::env::var_os("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").ok_or_else(|| {
            anyhow!("cannot place the engine key: neither FIREBREAK_ENGINE_KEY, XDG_CONFIG_HOME nor HOME is set\nhint: set FIREBREAK_ENGINE_KEY to a file path")
        })?)
        .join(".config"),
    };
    Ok(config.join("firebreak").join("engine.key"))
}

/// The engine key, created on first use.
pub fn engine_key() -> anyhow::Result<SigningKey> {
    let path = engine_key_path()?;
    if path.exists() {
        return read_key(&path);
    }
    let key = new_key()?;
    write_key(&path, &key)?;
    Ok(key)
}

/// A new key from the operating system's randomness.
pub fn new_key() -> anyhow::Result<SigningKey> {
    let mut seed = [0u8; 32];
    let mut random = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut random, &mut seed).context("reading /dev/urandom")?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a PEM private key.
pub fn read_key(path: &Path) -> anyhow::Result<SigningKey> {
    let pem =
        std::fs::read_to_string(path).with_context(|| format!("reading key {}", path.display()))?;
    parse_private_key_pem(&pem).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Writes a private key as PEM with mode 0600, refusing to overwrite.
pub fn write_key(path: &Path, key: &SigningKey) -> anyhow::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let pem = private_key_pem(key).map_err(|e| anyhow!(e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| {
            format!(
                "creating key file {} (it must not exist yet)",
                path.display()
            )
        })?;
    file.write_all(pem.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
