//! The static table (RFC 7541 Appendix A) and the dynamic table (§2.3.2, §4)
//! that the decoder and encoder each keep.

use std::collections::VecDeque;

use bytes::Bytes;

/// RFC 7541 Appendix A; entry `i` here is index `i + 1` on the wire.
pub(crate) static STATIC_TABLE: [(&[u8], &[u8]); 61] = STATIC_ENTRIES;

/// The static table as `Bytes`, so an indexed field can be handed out by
/// reference without touching a reference count.
pub(crate) static STATIC_BYTES: [(Bytes, Bytes); 61] = static_bytes();

const fn static_bytes() -> [(Bytes, Bytes); 61] {
    let mut out = [const { (Bytes::new(), Bytes::new()) }; 61];
    let mut i = 0;
    while i < 61 {
        let entry = (
            Bytes::from_static(STATIC_ENTRIES[i].0),
            Bytes::from_static(STATIC_ENTRIES[i].1),
        );
        // The replaced value is an empty static `Bytes`: nothing to drop, and a
        // const fn may not run destructors.
        std::mem::forget(std::mem::replace(&mut out[i], entry));
        i += 1;
    }
    out
}

const STATIC_ENTRIES: [(&[u8], &[u8]); 61] = [
    (b":authority", b""),
    (b":method", b"GET"),
    (b":method", b"POST"),
    (b":path", b"/"),
    (b":path", b"/index.html"),
    (b":scheme", b"http"),
    (b":scheme", b"https"),
    (b":status", b"200"),
    (b":status", b"204"),
    (b":status", b"206"),
    (b":status", b"304"),
    (b":status", b"400"),
    (b":status", b"404"),
    (b":status", b"500"),
    (b"accept-charset", b""),
    (b"accept-encoding", b"gzip, deflate"),
    (b"accept-language", b""),
    (b"accept-ranges", b""),
    (b"accept", b""),
    (b"access-control-allow-origin", b""),
    (b"age", b""),
    (b"allow", b""),
    (b"authorization", b""),
    (b"cache-control", b""),
    (b"content-disposition", b""),
    (b"content-encoding", b""),
    (b"content-language", b""),
    (b"content-length", b""),
    (b"content-location", b""),
    (b"content-range", b""),
    (b"content-type", b""),
    (b"cookie", b""),
    (b"date", b""),
    (b"etag", b""),
    (b"expect", b""),
    (b"expires", b""),
    (b"from", b""),
    (b"host", b""),
    (b"if-match", b""),
    (b"if-modified-since", b""),
    (b"if-none-match", b""),
    (b"if-range", b""),
    (b"if-unmodified-since", b""),
    (b"last-modified", b""),
    (b"link", b""),
    (b"location", b""),
    (b"max-forwards", b""),
    (b"proxy-authenticate", b""),
    (b"proxy-authorization", b""),
    (b"range", b""),
    (b"referer", b""),
    (b"refresh", b""),
    (b"retry-after", b""),
    (b"server", b""),
    (b"set-cookie", b""),
    (b"strict-transport-security", b""),
    (b"transfer-encoding", b""),
    (b"user-agent", b""),
    (b"vary", b""),
    (b"via", b""),
    (b"www-authenticate", b""),
];

/// Wire index of the first dynamic table entry.
pub(crate) const DYNAMIC_BASE: usize = STATIC_TABLE.len() + 1;

/// The wire index of the first static entry named `name`, if any. Entries
/// sharing a name are adjacent, so a caller wanting a full match scans on from
/// here while the name stays the same.
pub(crate) fn static_name_index(name: &[u8]) -> Option<usize> {
    // A match compiles to a length switch and a few compares, cheaper than
    // walking all 61 entries for the common miss (custom gRPC metadata).
    let index = match name {
        b":authority" => 1,
        b":method" => 2,
        b":path" => 4,
        b":scheme" => 6,
        b":status" => 8,
        b"accept-charset" => 15,
        b"accept-encoding" => 16,
        b"accept-language" => 17,
        b"accept-ranges" => 18,
        b"accept" => 19,
        b"access-control-allow-origin" => 20,
        b"age" => 21,
        b"allow" => 22,
        b"authorization" => 23,
        b"cache-control" => 24,
        b"content-disposition" => 25,
        b"content-encoding" => 26,
        b"content-language" => 27,
        b"content-length" => 28,
        b"content-location" => 29,
        b"content-range" => 30,
        b"content-type" => 31,
        b"cookie" => 32,
        b"date" => 33,
        b"etag" => 34,
        b"expect" => 35,
        b"expires" => 36,
        b"from" => 37,
        b"host" => 38,
        b"if-match" => 39,
        b"if-modified-since" => 40,
        b"if-none-match" => 41,
        b"if-range" => 42,
        b"if-unmodified-since" => 43,
        b"last-modified" => 44,
        b"link" => 45,
        b"location" => 46,
        b"max-forwards" => 47,
        b"proxy-authenticate" => 48,
        b"proxy-authorization" => 49,
        b"range" => 50,
        b"referer" => 51,
        b"refresh" => 52,
        b"retry-after" => 53,
        b"server" => 54,
        b"set-cookie" => 55,
        b"strict-transport-security" => 56,
        b"transfer-encoding" => 57,
        b"user-agent" => 58,
        b"vary" => 59,
        b"via" => 60,
        b"www-authenticate" => 61,
        _ => return None,
    };
    Some(index)
}

/// The wire index of the static entry `name: value`, if there is one.
pub(crate) fn static_full_index(first: usize, name: &[u8], value: &[u8]) -> Option<usize> {
    (first..=STATIC_TABLE.len())
        .take_while(|&i| STATIC_TABLE[i - 1].0 == name)
        .find(|&i| STATIC_TABLE[i - 1].1 == value)
}

/// The size of an entry as RFC 7541 §4.1 counts it. The 32 octets stand for
/// the bookkeeping an implementation is assumed to need per entry, so that
/// many tiny entries cannot cost the peer more memory than it allowed.
pub(crate) fn entry_size(name_len: usize, value_len: usize) -> usize {
    name_len + value_len + 32
}

/// A dynamic table: newest entry first, so that position `i` is wire index
/// `DYNAMIC_BASE + i`.
#[derive(Debug)]
pub(crate) struct DynamicTable {
    entries: VecDeque<(Bytes, Bytes)>,
    /// Beside each entry: whether it is a valid HTTP/2 field (RFC 9113 §8.2.1),
    /// judged once at insertion so indexed references need no check.
    valid: VecDeque<bool>,
    size: usize,
    capacity: usize,
}

impl DynamicTable {
    pub(crate) fn new(capacity: usize) -> DynamicTable {
        DynamicTable {
            entries: VecDeque::new(),
            valid: VecDeque::new(),
            size: 0,
            capacity,
        }
    }

    pub(crate) fn size(&self) -> usize {
        self.size
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// The entry at zero-based position `i` (wire index `DYNAMIC_BASE + i`).
    pub(crate) fn get(&self, i: usize) -> Option<&(Bytes, Bytes)> {
        self.entries.get(i)
    }

    /// The entry at position `i` and whether it is a valid HTTP/2 field.
    #[inline]
    pub(crate) fn get_checked(&self, i: usize) -> Option<(&Bytes, &Bytes, bool)> {
        let (name, value) = self.entries.get(i)?;
        Some((name, value, self.valid[i]))
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &(Bytes, Bytes)> {
        self.entries.iter()
    }

    /// Adds an entry, evicting the oldest ones to make room (§4.4). An entry
    /// larger than the whole table is not an error: it empties the table and
    /// is itself dropped.
    pub(crate) fn insert(&mut self, name: Bytes, value: Bytes) {
        let valid = crate::field::is_valid(&name, &value);
        self.insert_checked(name, value, valid);
    }

    /// [`DynamicTable::insert`] with the entry's validity already known.
    pub(crate) fn insert_checked(&mut self, name: Bytes, value: Bytes, valid: bool) {
        let size = entry_size(name.len(), value.len());
        if size > self.capacity {
            self.entries.clear();
            self.valid.clear();
            self.size = 0;
            return;
        }
        self.evict_to(self.capacity - size);
        self.size += size;
        self.entries.push_front((name, value));
        self.valid.push_front(valid);
    }

    /// Applies a new maximum size, evicting as needed (§4.3).
    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        self.capacity = capacity;
        self.evict_to(capacity);
    }

    fn evict_to(&mut self, limit: usize) {
        while self.size > limit {
            let Some((name, value)) = self.entries.pop_back() else {
                // Sizes are only ever added for entries pushed, so an empty
                // table has size zero; reset rather than loop forever.
                self.size = 0;
                break;
            };
            self.valid.pop_back();
            self.size -= entry_size(name.len(), value.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_name_index_matches_table() {
        for (i, (name, value)) in STATIC_TABLE.iter().enumerate() {
            let first = STATIC_TABLE.iter().position(|(n, _)| n == name).unwrap() + 1;
            assert_eq!(
                static_name_index(name),
                Some(first),
                "{}",
                String::from_utf8_lossy(name)
            );
            assert_eq!(static_full_index(first, name, value), Some(i + 1));
        }
        assert_eq!(static_name_index(b"grpc-status"), None);
        assert_eq!(static_name_index(b":Method"), None);
        assert_eq!(static_full_index(8, b":status", b"201"), None);
        assert_eq!(static_full_index(61, b"www-authenticate", b"x"), None);
    }

    fn entry(name: &'static str, value: &'static str) -> (Bytes, Bytes) {
        (
            Bytes::from_static(name.as_bytes()),
            Bytes::from_static(value.as_bytes()),
        )
    }

    #[test]
    fn eviction_on_insert() {
        // Each entry: 1 + 1 + 32 = 34 octets; three fit in 110, not four.
        let mut table = DynamicTable::new(110);
        for (n, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            let (n, v) = entry(n, v);
            table.insert(n, v);
        }
        assert_eq!(table.size(), 102);
        let (n, v) = entry("d", "4");
        table.insert(n, v);
        assert_eq!(table.size(), 102);
        let names: Vec<_> = table.iter().map(|(n, _)| n.clone()).collect();
        assert_eq!(names, ["d", "c", "b"]);
    }

    #[test]
    fn oversized_entry_empties_table() {
        let mut table = DynamicTable::new(100);
        let (n, v) = entry("a", "1");
        table.insert(n, v);
        let (n, v) = entry(
            "name",
            "a value far too long to fit into a table of only one hundred octets",
        );
        table.insert(n, v);
        assert_eq!(table.size(), 0);
        assert!(table.get(0).is_none());
        // Exactly the capacity fits.
        let (n, v) = entry(
            "abcd",
            "0123456789012345678901234567890123456789012345678901234567890123",
        );
        assert_eq!(entry_size(n.len(), v.len()), 100);
        table.insert(n, v);
        assert_eq!(table.size(), 100);
    }

    #[test]
    fn shrinking_evicts_oldest() {
        let mut table = DynamicTable::new(4096);
        for (n, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
            let (n, v) = entry(n, v);
            table.insert(n, v);
        }
        table.set_capacity(70);
        assert_eq!(table.size(), 68);
        assert_eq!(table.get(0).unwrap().0, "c");
        assert_eq!(table.get(1).unwrap().0, "b");
        table.set_capacity(0);
        assert_eq!(table.size(), 0);
        assert!(table.get(0).is_none());
        assert_eq!(table.capacity(), 0);
    }
}
