//! Checksum selection (§10.3) and hashing.

use md5::Md5;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// A supported hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// MD5 (only when `md5_enabled`).
    Md5,
    /// SHA-224.
    Sha224,
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl Algo {
    /// Parses a hashlib name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().replace('-', "").as_str() {
            "md5" => Some(Self::Md5),
            "sha224" => Some(Self::Sha224),
            "sha256" => Some(Self::Sha256),
            "sha384" => Some(Self::Sha384),
            "sha512" => Some(Self::Sha512),
            _ => None,
        }
    }

    /// Picks the algorithm from a hex digest's length (128/64/32).
    pub fn from_digest_len(len: usize) -> Option<Self> {
        match len {
            128 => Some(Self::Sha512),
            96 => Some(Self::Sha384),
            64 => Some(Self::Sha256),
            56 => Some(Self::Sha224),
            32 => Some(Self::Md5),
            _ => None,
        }
    }

    /// A fresh hasher.
    pub fn hasher(self) -> Hasher {
        match self {
            Self::Md5 => Hasher::Md5(Md5::new()),
            Self::Sha224 => Hasher::Sha224(Sha224::new()),
            Self::Sha256 => Hasher::Sha256(Sha256::new()),
            Self::Sha384 => Hasher::Sha384(Sha384::new()),
            Self::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }
}

/// A running hash.
#[derive(Clone)]
pub enum Hasher {
    /// MD5.
    Md5(Md5),
    /// SHA-224.
    Sha224(Sha224),
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-384.
    Sha384(Sha384),
    /// SHA-512.
    Sha512(Sha512),
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hasher")
    }
}

impl Hasher {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Md5(h) => h.update(data),
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    /// The lower-case hex digest.
    pub fn hex(self) -> String {
        let bytes: Vec<u8> = match self {
            Self::Md5(h) => h.finalize().to_vec(),
            Self::Sha224(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether `s` is all hex digits.
pub fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Whether a checksum value is a URL of a checksum file.
pub fn is_url(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

/// Finds the digest for `file_name` in a checksum file (§10.3 parsing rules).
pub fn parse_checksum_file(text: &str, file_name: &str) -> Result<String, String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    if lines.len() == 1 && !lines[0].contains(char::is_whitespace) {
        let digest = lines[0];
        return if is_hex(digest) && matches!(digest.len(), 32 | 64 | 128) {
            Ok(digest.to_ascii_lowercase())
        } else {
            Err(format!(
                "Invalid checksum file (no valid checksum found): {digest:?}"
            ))
        };
    }
    for line in lines.iter().filter(|l| !l.starts_with('#')) {
        // GNU: "<digest>  [*]<name>"
        if let Some((digest, name)) = line.split_once(char::is_whitespace) {
            let name = name.trim().trim_start_matches('*');
            if name == file_name && is_hex(digest) {
                return Ok(digest.to_ascii_lowercase());
            }
        }
        // BSD: "ALGO (<name>) = <digest>"
        if let Some((head, digest)) = line.rsplit_once(" = ") {
            if head.ends_with(&format!("({file_name})")) && is_hex(digest.trim()) {
                return Ok(digest.trim().to_ascii_lowercase());
            }
        }
    }
    Err(format!("Checksum file does not contain name {file_name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_values() {
        let mut h = Algo::Sha256.hasher();
        h.update(b"abc");
        assert_eq!(
            h.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut h = Algo::Md5.hasher();
        h.update(b"abc");
        assert_eq!(h.hex(), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn checksum_files_in_all_three_shapes() {
        let d = "a".repeat(64);
        assert_eq!(
            parse_checksum_file(&format!("\n{d}\n"), "x.img"),
            Ok(d.clone())
        );
        let gnu = format!("# comment\n{}  other.img\n{d} *x.img\n", "b".repeat(64));
        assert_eq!(parse_checksum_file(&gnu, "x.img"), Ok(d.clone()));
        let bsd = format!("SHA256 (x.img) = {d}\n");
        assert_eq!(parse_checksum_file(&bsd, "x.img"), Ok(d.clone()));
        assert!(parse_checksum_file(&gnu, "y.img").is_err());
        assert!(parse_checksum_file("nothex", "x.img").is_err());
    }
}
