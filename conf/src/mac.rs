//! MAC addresses in the forms Go's `net.ParseMAC` takes for 48-bit addresses, so a MAC
//! the reference accepts is accepted here: `02:aa:bb:cc:dd:ee`, `02-aa-bb-cc-dd-ee`,
//! `02aa.bbcc.ddee` (any letter case).

/// The six bytes of `s`, or `None` if it is not one of the three forms.
pub fn parse(s: &str) -> Option<[u8; 6]> {
    let hex = |g: &str| -> Option<Vec<u8>> {
        if g.len() % 2 != 0 || !g.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        (0..g.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&g[i..i + 2], 16).ok())
            .collect()
    };
    let groups: Vec<&str> = match s.len() {
        17 if s.as_bytes()[2] == b':' => s.split(':').collect(),
        17 if s.as_bytes()[2] == b'-' => s.split('-').collect(),
        14 => s.split('.').collect(),
        _ => return None,
    };
    let width = if s.len() == 14 { 4 } else { 2 };
    if groups.len() != 12 / width || groups.iter().any(|g| g.len() != width) {
        return None;
    }
    let mut out = [0u8; 6];
    let bytes: Vec<u8> = groups
        .iter()
        .map(|g| hex(g))
        .collect::<Option<Vec<_>>>()?
        .concat();
    out.copy_from_slice(&bytes);
    Some(out)
}

/// Why `mac` cannot be a container interface's address, if it cannot: the kernel refuses
/// a multicast or all-zero one.
pub fn unicast_problem(mac: &[u8; 6]) -> Option<&'static str> {
    if mac[0] & 1 == 1 {
        Some("is a multicast address (the first byte is odd)")
    } else if mac.iter().all(|b| *b == 0) {
        Some("is all zeros")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_forms() {
        let want = Some([2, 0xaa, 0xbb, 0xcc, 0xdd, 0x0e]);
        for s in ["02:aa:bb:cc:dd:0e", "02-AA-bb-cc-dd-0e", "02aa.bbcc.dd0e"] {
            assert_eq!(parse(s), want, "{s}");
        }
        for bad in [
            "",
            "02:aa:bb:cc:dd",
            "02:aa:bb:cc:dd:ee:ff",
            "zz:aa:bb:cc:dd:ee",
            "2:a:b:c:d:e",
            "+2:aa:bb:cc:dd:ee",
            "02:aa-bb:cc:dd:ee",
            "02aa.bbcc.dd0",
            "02aabbccdd0e",
            "02:aa:bb:cc:dd:é",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn unicast_only() {
        assert!(unicast_problem(&[1, 0, 0, 0, 0, 1]).is_some());
        assert!(unicast_problem(&[0; 6]).is_some());
        assert!(unicast_problem(&[2, 0, 0, 0, 0, 1]).is_none());
    }
}
