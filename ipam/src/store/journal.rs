//! The records on disk, and the intent log that makes multi-file mutations all-or-nothing.
//!
//! An attachment's reservation is one file, its `Held` record, under several names:
//! `ips/<ip>` for each address and `attachments/<id>:<ifname>`. While a mutation runs,
//! the same file is also (or only) named `journal`:
//! - ADD: the record is written to a temp file and fsynced, renamed to `journal`, linked
//!   as `ips/<ip>` for each address, and renamed to `attachments/<id>:<ifname>` — that
//!   last rename both publishes the attachment and ends the journal;
//! - DEL: `attachments/<id>:<ifname>` is renamed to `journal` (lookups by attachment see
//!   nothing from then on), its `ips/<ip>` names are removed, then `journal`.
//!
//! A journal found by the next lock holder means the process died in between, and both
//! directions are repaired the same way — by removing what the attachment holds of the
//! named addresses, and its attachment name:
//! - an interrupted ADD never printed its result, so the runtime never learnt of the
//!   addresses: rolling back is correct (and the runtime will DEL or retry the ADD);
//! - an interrupted DEL is rolled forward: the runtime asked for exactly this.
//!
//! Replay only removes records naming the journal's attachment, and removals are
//! idempotent, so replaying a journal twice (a crash during repair) is harmless.
//!
//! Format 1 stores kept a list of addresses in `attachments/` and wrote a separate
//! `{"op","attachment","ips"}` journal; both are still read.

use super::Record;
use conf::Attachment;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// An attachment's reservation: who, since when, which boot, and every address it holds.
/// An `ips/<ip>` name reads as a plain `Record` (the extra field is ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Held {
    #[serde(flatten)]
    pub record: Record,
    pub ips: Vec<IpAddr>,
}

/// What `attachments/<id>:<ifname>` may hold.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum AttachmentFile {
    Held(Held),
    /// Format 1: just the addresses.
    Addresses(Vec<IpAddr>),
}

impl AttachmentFile {
    pub fn ips(&self) -> &[IpAddr] {
        match self {
            AttachmentFile::Held(h) => &h.ips,
            AttachmentFile::Addresses(ips) => ips,
        }
    }

    pub fn into_ips(self) -> Vec<IpAddr> {
        match self {
            AttachmentFile::Held(h) => h.ips,
            AttachmentFile::Addresses(ips) => ips,
        }
    }
}

/// What `journal` may hold.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum JournalFile {
    Held(Held),
    /// Format 1: `{"op":"add"|"del","attachment":{...},"ips":[...]}`.
    Intent {
        attachment: Attachment,
        ips: Vec<IpAddr>,
    },
}

impl JournalFile {
    /// The attachment whose mutation was cut short, and the addresses it names.
    pub fn target(self) -> (Attachment, Vec<IpAddr>) {
        match self {
            JournalFile::Held(h) => (h.record.attachment, h.ips),
            JournalFile::Intent { attachment, ips } => (attachment, ips),
        }
    }
}

pub fn describe(att: &Attachment, ips: &[IpAddr]) -> String {
    let ips: Vec<String> = ips.iter().map(ToString::to_string).collect();
    format!(
        "finished an interrupted ADD (rolled back) or DEL of container {:?} interface {:?} ({}): it holds nothing now",
        att.container_id,
        att.ifname,
        ips.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_formats_parse() {
        let held = Held {
            record: Record::new(Attachment::new("c1", "eth0"), Some("b")),
            ips: vec!["10.0.0.2".parse().expect("ip")],
        };
        let bytes = serde_json::to_vec(&held).expect("encode");
        let as_record: Record = serde_json::from_slice(&bytes).expect("an ips/ name");
        assert_eq!(as_record, held.record);
        let att: AttachmentFile = serde_json::from_slice(&bytes).expect("held");
        assert_eq!(att.into_ips(), held.ips);
        let old: AttachmentFile = serde_json::from_slice(br#"["10.0.0.2"]"#).expect("format 1");
        assert_eq!(old.into_ips(), held.ips);
        let j: JournalFile = serde_json::from_slice(&bytes).expect("journal");
        assert_eq!(
            j.target(),
            (Attachment::new("c1", "eth0"), held.ips.clone())
        );
        let old =
            br#"{"op":"del","attachment":{"containerID":"c1","ifname":"eth0"},"ips":["10.0.0.2"]}"#;
        let j: JournalFile = serde_json::from_slice(old).expect("format 1 journal");
        assert_eq!(j.target(), (Attachment::new("c1", "eth0"), held.ips));
    }
}
