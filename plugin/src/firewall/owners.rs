//! Which networks an element of the shared sets is for, recorded in the element's
//! comment (pure, unit tested).
//!
//! A network's stamp can name subnets it no longer uses (steady-state DELs do not
//! reinstall), and a stamp can be lost: deciding by subnet alone, one network deleted
//! another's identical element, or leaked its own. The comment `vbridge:<tag>[,<tag>]`
//! names every network that needs the element, so an element two networks need stays
//! until the last of them goes.

/// nft refuses longer comments (`NFTNL_UDATA_COMMENT_MAXLEN`).
const MAX_COMMENT: usize = 128;
/// Longer names are hashed, so that a comment holds several owners.
const MAX_TAG: usize = 32;
const PREFIX: &str = "vbridge:";

/// Who an element is for, as its comment says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claim {
    /// No comment: written before owners were recorded, so whose it is can only be told
    /// by the subnets a network knows it may have added.
    Unmarked,
    /// Tags of the networks that need the element (see [`tag`]).
    Owners(Vec<String>),
    /// A comment vbridge did not write: someone else's element, never touched.
    Foreign,
}

impl Claim {
    pub(super) fn parse(comment: Option<&str>) -> Claim {
        let Some(c) = comment else {
            return Claim::Unmarked;
        };
        match c.strip_prefix(PREFIX) {
            Some(tags) => Claim::Owners(
                tags.split(',')
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect(),
            ),
            None => Claim::Foreign,
        }
    }
}

/// How a network is named in comments: its name, or for a long one `#` and a hash (`#`
/// cannot start a network name, so the two never collide).
pub(super) fn tag(network: &str) -> String {
    if network.len() <= MAX_TAG {
        network.to_string()
    } else {
        format!("#{:016x}", conf::hash::fnv1a(&[network]))
    }
}

/// The comment naming `owners`, the first first. Tags that would make it too long for
/// nft are left out: so many networks sharing one subnet is a misconfiguration, and one
/// left out merely loses the element when the named ones have all gone.
pub(super) fn comment(owners: &[String]) -> String {
    let mut c = PREFIX.to_string();
    for (i, t) in owners.iter().enumerate() {
        let sep = if i == 0 { "" } else { "," };
        if c.len() + sep.len() + t.len() > MAX_COMMENT {
            break;
        }
        c.push_str(sep);
        c.push_str(t);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owners(tags: &[&str]) -> Claim {
        Claim::Owners(tags.iter().map(|t| t.to_string()).collect())
    }

    #[test]
    fn comments_round_trip() {
        let tags = vec!["net-1.a".to_string(), "b_2".to_string()];
        assert_eq!(comment(&tags), "vbridge:net-1.a,b_2");
        assert_eq!(
            Claim::parse(Some(&comment(&tags))),
            owners(&["net-1.a", "b_2"])
        );
        assert_eq!(Claim::parse(None), Claim::Unmarked);
        assert_eq!(Claim::parse(Some("admin's")), Claim::Foreign);
        assert_eq!(Claim::parse(Some("vbridge:")), owners(&[]));
    }

    #[test]
    fn long_names_are_hashed_and_comments_stay_within_the_limit() {
        let long = "n".repeat(200);
        let t = tag(&long);
        assert_eq!(t.len(), 17);
        assert!(t.starts_with('#'));
        assert_eq!(t, tag(&long));
        assert_ne!(t, tag(&"n".repeat(201)));
        assert_eq!(tag(&"n".repeat(MAX_TAG)), "n".repeat(MAX_TAG));
        let many: Vec<String> = (0..10).map(|i| format!("{i}{}", "x".repeat(31))).collect();
        let c = comment(&many);
        assert!(c.len() <= MAX_COMMENT, "{c}");
        // The first owner, the network writing the comment, is always named.
        assert_eq!(Claim::parse(Some(&c)), Claim::Owners(many[..3].to_vec()));
    }
}
