//! Name rules shared by the spec and the reference `skel`.

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$` — container ids and network names. A network name
/// becomes a directory name, so this also keeps `..` and `/` out of paths.
pub fn is_valid_id(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '-')
}

/// Linux interface names: at most 15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn interface_name_problem(s: &str) -> Option<&'static str> {
    if s.is_empty() {
        return Some("is empty");
    }
    if s.len() > 15 {
        return Some("is longer than 15 bytes");
    }
    if s == "." || s == ".." {
        return Some("may not be '.' or '..'");
    }
    if s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Some("may not contain '/', ':' or whitespace");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "ctr1", "A-b_c.d", "0abc"] {
            assert!(is_valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", ".a", "_a", "a/b", "../../etc", "a b", "a:b", "ä"] {
            assert!(!is_valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn ifnames() {
        assert!(interface_name_problem("eth0").is_none());
        assert!(interface_name_problem("123456789012345").is_none());
        assert!(interface_name_problem("1234567890123456").is_some());
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "a\tb"] {
            assert!(interface_name_problem(bad).is_some(), "{bad:?}");
        }
    }
}
