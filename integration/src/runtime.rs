//! A libcni-like runner for network configuration lists.
//!
//! Mirrors libcni: ADD runs the plugins in order feeding each the previous result, the final
//! result is cached per (container id, ifname); CHECK runs in order and DEL in reverse, both with
//! the cached result as `prevResult` (DEL only from 0.4.0 on, as libcni); GC first DELs every
//! cached attachment not listed as valid, then sends GC with both `cni.dev/valid-attachments`
//! and `cni.dev/attachments`. GC and STATUS are sent only for lists of version >= 1.1.0.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use serde_json::{json, Map, Value};

use crate::exec::{exec, CniError, Output};
use crate::netns::Netns;
use crate::paths;

/// One attachment of a container to the network: the per-call runtime parameters.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub container_id: String,
    /// `CNI_NETNS` (may be empty on DEL).
    pub netns: String,
    pub ifname: String,
    /// `CNI_ARGS`.
    pub cni_args: String,
    /// Capability arguments, e.g. `portMappings`; each plugin gets the keys it declares.
    pub capability_args: Map<String, Value>,
}

impl Attachment {
    pub fn new(container_id: &str, netns: &Netns) -> Attachment {
        Attachment {
            container_id: container_id.to_string(),
            netns: netns.path_str(),
            ifname: "eth0".to_string(),
            cni_args: String::new(),
            capability_args: Map::new(),
        }
    }

    /// Adds a capability argument (`runtimeConfig` key).
    pub fn with_capability(mut self, key: &str, value: Value) -> Attachment {
        self.capability_args.insert(key.to_string(), value);
        self
    }

    fn key(&self) -> (String, String) {
        (self.container_id.clone(), self.ifname.clone())
    }
}

/// A failed plugin call inside a list operation.
#[derive(Debug, Clone)]
pub struct CniFailure {
    pub plugin: String,
    pub command: String,
    pub output: Output,
}

impl CniFailure {
    /// The CNI error JSON the plugin printed, if any.
    pub fn error(&self) -> Option<CniError> {
        self.output.cni_error()
    }

    /// The error code, or 0 when the plugin printed no error object.
    pub fn code(&self) -> u32 {
        self.error().map_or(0, |e| e.code)
    }
}

impl std::fmt::Display for CniFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} failed: {}",
            self.plugin, self.command, self.output
        )
    }
}

impl std::error::Error for CniFailure {}

struct Cached {
    attachment: Attachment,
    result: Value,
}

/// Runs one conflist inside one fake host netns.
pub struct Runtime {
    conflist: Value,
    host: PathBuf,
    cache: Mutex<HashMap<(String, String), Cached>>,
}

impl Runtime {
    pub fn new(conflist: Value, host: &Netns) -> Runtime {
        Runtime {
            conflist,
            host: host.path().to_path_buf(),
            cache: Mutex::new(HashMap::new()),
        }
    }

    pub fn conflist(&self) -> &Value {
        &self.conflist
    }

    /// The list's `cniVersion`.
    pub fn version(&self) -> &str {
        self.conflist["cniVersion"].as_str().unwrap_or("")
    }

    fn name(&self) -> &str {
        self.conflist["name"].as_str().unwrap_or("")
    }

    fn plugins(&self) -> Vec<Value> {
        self.conflist["plugins"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// ADD through every plugin; caches and returns the final result.
    pub fn add(&self, att: &Attachment) -> Result<Value, CniFailure> {
        let mut prev: Option<Value> = None;
        for plugin in self.plugins() {
            let conf = self.plugin_config(&plugin, Some(att), prev.as_ref());
            let out = self.call(&plugin, "ADD", att, &conf)?;
            prev = Some(out.json());
        }
        let result = prev.unwrap_or(Value::Null);
        let cached = Cached {
            attachment: att.clone(),
            result: result.clone(),
        };
        self.lock().insert(att.key(), cached);
        Ok(result)
    }

    /// CHECK through every plugin with the cached result; returns each plugin's output. Panics
    /// if there is no cached result or the list predates CHECK (libcni refuses both).
    pub fn check(&self, att: &Attachment) -> Result<Vec<Output>, CniFailure> {
        assert!(
            version_at_least(self.version(), "0.4.0"),
            "CHECK needs cniVersion >= 0.4.0"
        );
        let prev = self.cached(att).expect("CHECK without a cached ADD result");
        let plugins = self.plugins();
        plugins
            .iter()
            .map(|p| {
                self.call(
                    p,
                    "CHECK",
                    att,
                    &self.plugin_config(p, Some(att), Some(&prev)),
                )
            })
            .collect()
    }

    /// DEL through every plugin in reverse; drops the cache entry on success; returns each
    /// plugin's output (in call order).
    pub fn del(&self, att: &Attachment) -> Result<Vec<Output>, CniFailure> {
        let prev = self
            .cached(att)
            .filter(|_| version_at_least(self.version(), "0.4.0"));
        let mut outputs = Vec::new();
        for plugin in self.plugins().iter().rev() {
            let conf = self.plugin_config(plugin, Some(att), prev.as_ref());
            outputs.push(self.call(plugin, "DEL", att, &conf)?);
        }
        self.lock().remove(&att.key());
        Ok(outputs)
    }

    /// libcni GC: DEL cached attachments not in `valid`, then GC every plugin (>= 1.1.0).
    pub fn gc(&self, valid: &[(&str, &str)]) -> Result<(), CniFailure> {
        if !version_at_least(self.version(), "1.1.0") {
            return Ok(());
        }
        for att in self.stale_attachments(valid) {
            self.del(&att)?;
        }
        let list: Vec<Value> = valid
            .iter()
            .map(|(c, i)| json!({"containerID": c, "ifname": i}))
            .collect();
        for plugin in self.plugins() {
            let mut conf = self.plugin_config(&plugin, None, None);
            conf["cni.dev/valid-attachments"] = Value::Array(list.clone());
            conf["cni.dev/attachments"] = Value::Array(list.clone());
            self.call(&plugin, "GC", &no_attachment(), &conf)?;
        }
        Ok(())
    }

    /// STATUS of every plugin (>= 1.1.0; earlier lists have no STATUS and succeed).
    pub fn status(&self) -> Result<(), CniFailure> {
        if !version_at_least(self.version(), "1.1.0") {
            return Ok(());
        }
        for plugin in self.plugins() {
            let conf = self.plugin_config(&plugin, None, None);
            self.call(&plugin, "STATUS", &no_attachment(), &conf)?;
        }
        Ok(())
    }

    /// The cached final ADD result of an attachment.
    pub fn cached(&self, att: &Attachment) -> Option<Value> {
        self.lock().get(&att.key()).map(|c| c.result.clone())
    }

    fn stale_attachments(&self, valid: &[(&str, &str)]) -> Vec<Attachment> {
        let keep = |c: &Cached| {
            valid
                .iter()
                .any(|(id, ifn)| c.attachment.container_id == *id && c.attachment.ifname == *ifn)
        };
        self.lock()
            .values()
            .filter(|c| !keep(c))
            .map(|c| c.attachment.clone())
            .collect()
    }

    /// The stdin one plugin gets: its object with `name`, `cniVersion`, `prevResult` and the
    /// `runtimeConfig` of its declared capabilities injected, `capabilities` removed.
    pub fn plugin_config(
        &self,
        plugin: &Value,
        att: Option<&Attachment>,
        prev: Option<&Value>,
    ) -> Value {
        let mut conf = plugin.as_object().cloned().unwrap_or_default();
        let caps = conf.remove("capabilities");
        conf.insert("name".into(), json!(self.name()));
        conf.insert("cniVersion".into(), json!(self.version()));
        if let Some(rc) = att.and_then(|a| runtime_config(caps.as_ref(), a)) {
            conf.insert("runtimeConfig".into(), rc);
        }
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        Value::Object(conf)
    }

    fn call(
        &self,
        plugin: &Value,
        command: &str,
        att: &Attachment,
        conf: &Value,
    ) -> Result<Output, CniFailure> {
        let kind = plugin["type"].as_str().unwrap_or("");
        let env = cni_env(command, att);
        let out = exec(
            &self.host,
            &paths::find_plugin(kind),
            &env,
            conf.to_string().as_bytes(),
        );
        if out.success() {
            Ok(out)
        } else {
            Err(CniFailure {
                plugin: kind.to_string(),
                command: command.to_string(),
                output: out,
            })
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The empty attachment of list-wide verbs (GC, STATUS), as libcni sends them.
pub fn no_attachment() -> Attachment {
    Attachment {
        container_id: String::new(),
        netns: String::new(),
        ifname: String::new(),
        cni_args: String::new(),
        capability_args: Map::new(),
    }
}

/// The intersection of declared capabilities and the attachment's capability args.
fn runtime_config(caps: Option<&Value>, att: &Attachment) -> Option<Value> {
    let caps = caps?.as_object()?;
    let rc: Map<String, Value> = caps
        .iter()
        .filter(|(_, on)| on.as_bool() == Some(true))
        .filter_map(|(k, _)| att.capability_args.get(k).map(|v| (k.clone(), v.clone())))
        .collect();
    (!rc.is_empty()).then_some(Value::Object(rc))
}

/// The six `CNI_*` variables libcni always sets (empty when not applicable).
pub fn cni_env(command: &str, att: &Attachment) -> Vec<(String, String)> {
    [
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", att.container_id.as_str()),
        ("CNI_NETNS", att.netns.as_str()),
        ("CNI_IFNAME", att.ifname.as_str()),
        ("CNI_ARGS", att.cni_args.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .chain([("CNI_PATH".to_string(), paths::cni_path())])
    .collect()
}

/// `a >= b` for dotted versions such as "0.4.0".
pub fn version_at_least(a: &str, b: &str) -> bool {
    parse_version(a) >= parse_version(b)
}

fn parse_version(v: &str) -> Vec<u32> {
    v.split('.').map(|p| p.parse().unwrap_or(0)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime(plugins: Value) -> Runtime {
        let conflist = json!({"cniVersion": "1.0.0", "name": "n", "plugins": plugins});
        Runtime {
            conflist,
            host: PathBuf::from("/nonexistent"),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn att() -> Attachment {
        Attachment {
            container_id: "c".into(),
            netns: "/run/netns/x".into(),
            ifname: "eth0".into(),
            cni_args: String::new(),
            capability_args: Map::new(),
        }
        .with_capability("portMappings", json!([{"hostPort": 1}]))
        .with_capability("mac", json!("02:00:00:00:00:01"))
    }

    #[test]
    fn injects_name_version_prev_and_declared_capabilities() {
        let rt = runtime(
            json!([{"type": "portmap", "capabilities": {"portMappings": true, "ips": true}}]),
        );
        let plugin = &rt.plugins()[0];
        let conf = rt.plugin_config(plugin, Some(&att()), Some(&json!({"cniVersion": "1.0.0"})));
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert!(conf.get("capabilities").is_none());
        assert_eq!(
            conf["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 1}]})
        );
        assert_eq!(conf["prevResult"]["cniVersion"], "1.0.0");
    }

    #[test]
    fn no_runtime_config_without_capabilities() {
        let rt = runtime(json!([{"type": "bridge"}]));
        let conf = rt.plugin_config(&rt.plugins()[0], Some(&att()), None);
        assert!(conf.get("runtimeConfig").is_none());
        assert!(conf.get("prevResult").is_none());
    }

    #[test]
    fn env_has_the_six_cni_variables() {
        let env = cni_env("ADD", &att());
        let keys: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "CNI_COMMAND",
                "CNI_CONTAINERID",
                "CNI_NETNS",
                "CNI_IFNAME",
                "CNI_ARGS",
                "CNI_PATH"
            ]
        );
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("0.10.0", "0.4.0"));
        assert!(version_at_least("1.1.0", "1.1.0"));
        assert!(!version_at_least("0.3.1", "0.4.0"));
    }
}
