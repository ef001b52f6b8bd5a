//! Network-level lifecycle: the first attachment of a network installs its firewall
//! state, the last one removes it. Both decisions are made under the network's state
//! lock, and the steady state (firewall already current) costs no `nft` exec.

use crate::error::{Error, Result};
use crate::firewall::{self, NetworkRules};
use crate::state::{AttachmentRecord, FirewallStamp, NetState};
use conf::netconf::NetConf;
use conf::Attachment;
use ipnetwork::IpNetwork;

fn wants_firewall(conf: &NetConf) -> bool {
    conf.ip_masq || conf.isolate
}

/// Registers `att` and makes sure the network's firewall state covers `subnets`.
/// On failure nothing stays registered. The caller holds the network's lock.
pub fn attach(
    st: &NetState,
    conf: &NetConf,
    att: &Attachment,
    rec: &AttachmentRecord,
    subnets: &[IpNetwork],
) -> Result<()> {
    st.register(att, rec)?;
    if let Err(e) = ensure_firewall(conf, st, subnets) {
        if let Err(u) = st.unregister(att) {
            log::error!("rollback: {u}");
        }
        return Err(e);
    }
    Ok(())
}

fn ensure_firewall(conf: &NetConf, st: &NetState, subnets: &[IpNetwork]) -> Result<()> {
    if !wants_firewall(conf) || subnets.is_empty() {
        return Ok(());
    }
    let mut want = FirewallStamp::current(subnets.to_vec(), conf.ip_masq, conf.isolate)?;
    let have = st.firewall()?;
    if have.as_ref().is_some_and(|h| h.covers(&want)) {
        return Ok(());
    }
    // Same boot and host netns: keep the subnets already installed (a range set may span
    // several subnets, each learnt from the ADD that first used it).
    if let Some(h) = have.filter(|h| h.boot_id == want.boot_id && h.netns_inode == want.netns_inode)
    {
        for s in h.subnets {
            if !want.subnets.contains(&s) {
                want.subnets.push(s);
            }
        }
    }
    firewall::install(&NetworkRules {
        network: &conf.name,
        subnets: &want.subnets,
        masquerade: conf.ip_masq,
        isolate: conf.isolate,
    })?;
    st.set_firewall(Some(&want))
}

/// Unregisters `att`; when it was the network's last attachment, removes the firewall
/// state. Returns whether the network is now unused. The caller holds the lock.
pub fn detach(st: &NetState, conf: &NetConf, att: &Attachment) -> Result<bool> {
    st.unregister(att)?;
    remove_firewall_if_unused(conf, st)
}

/// Called with the lock held, after unregistering; returns whether the network is unused.
pub fn remove_firewall_if_unused(conf: &NetConf, st: &NetState) -> Result<bool> {
    if !st.is_empty()? {
        return Ok(false);
    }
    // A corrupt stamp must not keep rules alive forever: treat it as "installed".
    let stamp = st.firewall().unwrap_or_else(|e| {
        log::warn!("{e}");
        Some(FirewallStamp {
            boot_id: String::new(),
            netns_inode: 0,
            subnets: vec![],
            masquerade: true,
            isolate: true,
        })
    });
    if let Some(s) = stamp {
        firewall::remove(&conf.name, &s.subnets).map_err(Error::from)?;
        st.set_firewall(None)?;
    }
    Ok(true)
}
