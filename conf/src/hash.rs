//! The one stable hash of the project, for names and keys that must not change between
//! builds (host veth names, comments in nftables, the IPAM's walk key).

/// FNV-1a over `parts`, each followed by a NUL byte so that ("ab", "c") and ("a", "bc")
/// differ. Stable across versions and platforms, unlike std's `DefaultHasher`.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

#[cfg(test)]
mod tests {
    use super::fnv1a;

    /// Pinned: host veth names made by earlier builds must still be found.
    #[test]
    fn values_are_stable_and_parts_are_separated() {
        assert_eq!(fnv1a(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&[""]), 0xaf63_bd4c_8601_b7df);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }
}
