//! The intent log that makes multi-file mutations all-or-nothing.
//!
//! An ADD writes one `ips/<ip>` record per address plus `attachments/<id>:<ifname>`; a
//! DEL removes them. Before either starts, `journal` is written (atomically, durably)
//! naming the attachment and the addresses; it is removed when the mutation is complete.
//! A journal found by the next lock holder means the process died in between, and both
//! directions are repaired the same way — by removing what the attachment holds of the
//! named addresses:
//! - an interrupted ADD never printed its result, so the runtime never learnt of the
//!   addresses: rolling back is correct (and the runtime will DEL or retry the ADD);
//! - an interrupted DEL is rolled forward: the runtime asked for exactly this.
//!
//! Replay only removes records naming the journal's attachment, and removals are
//! idempotent, so replaying a journal twice (a crash during repair) is harmless.

use conf::Attachment;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Add,
    Del,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Journal {
    pub op: Op,
    pub attachment: Attachment,
    pub ips: Vec<IpAddr>,
}

impl Journal {
    pub fn describe(&self) -> String {
        let ips: Vec<String> = self.ips.iter().map(ToString::to_string).collect();
        let verb = match self.op {
            Op::Add => "rolled back an interrupted ADD",
            Op::Del => "finished an interrupted DEL",
        };
        format!(
            "{verb} of container {:?} interface {:?} ({})",
            self.attachment.container_id,
            self.attachment.ifname,
            ips.join(", ")
        )
    }
}
