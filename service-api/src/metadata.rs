//! Custom metadata: the headers and trailers a call carries besides gRPC's own.

use std::fmt;

use bytes::Bytes;
use ringrpc_codec::grpc::metadata as wire;

/// Keys gRPC itself uses in headers or trailers; users may not set them.
const RESERVED: [&str; 9] = [
    "content-type",
    "te",
    "user-agent",
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "grpc-encoding",
    "grpc-accept-encoding",
    "grpc-timeout",
];

/// A metadata key or value was not valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InvalidMetadata {
    /// Keys are 1+ characters of `0-9 a-z _ - .` (gRPC PROTOCOL-HTTP2).
    Key(String),
    /// The key is one gRPC sets itself (`grpc-status`, `content-type`, ...).
    Reserved(String),
    /// ASCII values are printable ASCII (0x20–0x7E), without leading or trailing space.
    Value,
    /// Binary values need a key ending in `-bin`, ASCII values a key that does not.
    WrongKind(String),
}

impl fmt::Display for InvalidMetadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidMetadata::Key(k) => write!(f, "invalid metadata key {k:?}"),
            InvalidMetadata::Reserved(k) => write!(f, "metadata key {k:?} is reserved by gRPC"),
            InvalidMetadata::Value => f.write_str("invalid ASCII metadata value"),
            InvalidMetadata::WrongKind(k) => {
                write!(f, "key {k:?}: -bin keys take binary values, others ASCII")
            }
        }
    }
}

impl std::error::Error for InvalidMetadata {}

/// A value as stored: ASCII text, or raw bytes for `-bin` keys (base64 on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataValue<'a> {
    /// The value of a key without the `-bin` suffix.
    Ascii(&'a str),
    /// The decoded value of a `-bin` key.
    Binary(&'a [u8]),
}

/// Metadata of a call: an ordered multimap from lowercase keys to values. Keys
/// ending in `-bin` hold binary values, all others ASCII ones; the two kinds are
/// kept apart by the accessors (`get` vs `get_bin`).
///
/// Entries are stored as the `Bytes` the codec decoded them into, so handing a
/// request's metadata to a handler copies nothing.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    entries: Vec<(Bytes, Bytes)>,
}

impl Metadata {
    /// Empty metadata (does not allocate).
    pub fn new() -> Metadata {
        Metadata {
            entries: Vec::new(),
        }
    }

    /// Wraps entries the engine has already validated (binary values decoded).
    #[doc(hidden)]
    pub fn from_raw(entries: Vec<(Bytes, Bytes)>) -> Metadata {
        Metadata { entries }
    }

    /// The entries as (key, value) pairs, binary values decoded.
    #[doc(hidden)]
    pub fn into_raw(self) -> Vec<(Bytes, Bytes)> {
        self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sets an ASCII value, replacing any earlier values of `key`.
    pub fn insert(
        &mut self,
        key: impl AsRef<str>,
        value: impl AsRef<str>,
    ) -> Result<(), InvalidMetadata> {
        let key = key.as_ref();
        self.remove(key);
        self.append(key, value)
    }

    /// Adds an ASCII value, keeping earlier values of `key`.
    pub fn append(
        &mut self,
        key: impl AsRef<str>,
        value: impl AsRef<str>,
    ) -> Result<(), InvalidMetadata> {
        let key = check_key(key.as_ref())?;
        if key.ends_with("-bin") {
            return Err(InvalidMetadata::WrongKind(key.to_owned()));
        }
        let value = value.as_ref();
        if !wire::is_valid_ascii_value(value.as_bytes())
            || !wire::is_valid_field_value(value.as_bytes())
        {
            return Err(InvalidMetadata::Value);
        }
        self.entries.push((
            Bytes::copy_from_slice(key.as_bytes()),
            Bytes::copy_from_slice(value.as_bytes()),
        ));
        Ok(())
    }

    /// Sets a binary value (`key` must end in `-bin`), replacing earlier ones.
    pub fn insert_bin(
        &mut self,
        key: impl AsRef<str>,
        value: impl Into<Bytes>,
    ) -> Result<(), InvalidMetadata> {
        let key = key.as_ref();
        self.remove(key);
        self.append_bin(key, value)
    }

    /// Adds a binary value (`key` must end in `-bin`).
    pub fn append_bin(
        &mut self,
        key: impl AsRef<str>,
        value: impl Into<Bytes>,
    ) -> Result<(), InvalidMetadata> {
        let key = check_key(key.as_ref())?;
        if !key.ends_with("-bin") {
            return Err(InvalidMetadata::WrongKind(key.to_owned()));
        }
        self.entries
            .push((Bytes::copy_from_slice(key.as_bytes()), value.into()));
        Ok(())
    }

    /// The first ASCII value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(k, _)| k.as_ref() == key.as_bytes())
            .map(|(k, v)| value_of(k, v))
            .find_map(|v| match v {
                MetadataValue::Ascii(s) => Some(s),
                MetadataValue::Binary(_) => None,
            })
    }

    /// The first binary value of `key` (which ends in `-bin`).
    pub fn get_bin(&self, key: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .filter(|(k, _)| k.as_ref() == key.as_bytes())
            .map(|(k, v)| value_of(k, v))
            .find_map(|v| match v {
                MetadataValue::Binary(b) => Some(b),
                MetadataValue::Ascii(_) => None,
            })
    }

    /// Every value of `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = MetadataValue<'a>> + 'a {
        self.entries
            .iter()
            .filter(move |(k, _)| k.as_ref() == key.as_bytes())
            .map(|(k, v)| value_of(k, v))
    }

    /// Removes every value of `key`; returns whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(k, _)| k.as_ref() != key.as_bytes());
        before != self.entries.len()
    }

    /// Every entry in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, MetadataValue<'_>)> {
        self.entries
            .iter()
            .map(|(k, v)| (std::str::from_utf8(k).unwrap_or(""), value_of(k, v)))
    }

    /// Appends every entry of `other`.
    pub fn extend(&mut self, other: Metadata) {
        self.entries.extend(other.entries);
    }
}

fn value_of<'a>(key: &'a [u8], value: &'a [u8]) -> MetadataValue<'a> {
    if key.ends_with(b"-bin") {
        MetadataValue::Binary(value)
    } else {
        // The codec only accepts valid field values, and `append` only printable
        // ASCII, so this is text; anything else shows as empty rather than panics.
        MetadataValue::Ascii(std::str::from_utf8(value).unwrap_or(""))
    }
}

fn check_key(key: &str) -> Result<&str, InvalidMetadata> {
    let valid = !key.is_empty()
        && key.bytes().all(|b| {
            b.is_ascii_digit() || b.is_ascii_lowercase() || matches!(b, b'_' | b'-' | b'.')
        });
    if !valid {
        return Err(InvalidMetadata::Key(key.to_owned()));
    }
    if RESERVED.contains(&key) {
        return Err(InvalidMetadata::Reserved(key.to_owned()));
    }
    Ok(key)
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ascii_and_binary_are_kept_apart() {
        let mut md = Metadata::new();
        md.insert("x-user", "alice").unwrap();
        md.append("x-user", "bob").unwrap();
        md.insert_bin("x-trace-bin", Bytes::from_static(&[0, 255]))
            .unwrap();
        assert_eq!(md.get("x-user"), Some("alice"));
        assert_eq!(md.get_all("x-user").count(), 2);
        assert_eq!(md.get_bin("x-trace-bin"), Some(&[0u8, 255][..]));
        assert_eq!(md.get("x-trace-bin"), None);
        assert_eq!(
            md.insert("x-a-bin", "text"),
            Err(InvalidMetadata::WrongKind("x-a-bin".into()))
        );
        assert_eq!(
            md.insert_bin("x-a", Bytes::new()),
            Err(InvalidMetadata::WrongKind("x-a".into()))
        );
        md.insert("x-user", "carol").unwrap();
        assert_eq!(
            md.get_all("x-user").collect::<Vec<_>>(),
            [MetadataValue::Ascii("carol")]
        );
    }

    #[test]
    fn invalid_keys_values_and_reserved_names_are_refused() {
        let mut md = Metadata::new();
        assert!(matches!(
            md.insert("X-Upper", "v"),
            Err(InvalidMetadata::Key(_))
        ));
        assert!(matches!(md.insert("", "v"), Err(InvalidMetadata::Key(_))));
        assert!(matches!(
            md.insert("grpc-status", "0"),
            Err(InvalidMetadata::Reserved(_))
        ));
        assert_eq!(md.insert("x-a", "line\nbreak"), Err(InvalidMetadata::Value));
        assert_eq!(md.insert("x-a", " padded"), Err(InvalidMetadata::Value));
        assert!(md.is_empty());
    }
}
