//! What the demo adds to the example config: the RDS restart of `operations/` (a declared
//! HTTP call, signed and polled against the emulator) and a declared command that runs a
//! harmless script in place of `kubectl rollout restart`, each with a rule and a target.

use std::path::{Path, PathBuf};

/// The declared RDS restart, as a team would copy it.
const RDS_RESTART: &str = include_str!("../../operations/huawei-rds-restart.toml");

/// Stands in for kubectl: says what it was asked and changes nothing. It gets its values
/// as argv elements (never through a shell of opsgate's).
const SCRIPT: &str = "#!/bin/sh\n\
# opsgate demo: stands in for `kubectl rollout restart`; changes nothing.\n\
echo \"deployment.apps/$2 restarted in namespace $1 (demo: nothing was changed)\"\n";

/// An RDS instance for the demo's named target (any ID of the documented shape exists in
/// the emulator).
pub const DEMO_RDS_INSTANCE: &str = "5a0f2b8e9c1d4e3fa6b7c8d9e0f1a2b3in01";

/// Writes the stand-in script into `dir` (a directory of the demo's own).
pub fn write_script(dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("rollout-restart-demo.sh");
    std::fs::write(&path, SCRIPT)
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("cannot write the demo's script {}: {e}", path.display()))?;
    Ok(path)
}

/// TOML appended to the example config: the declared operations, a named RDS target, and their rules (an RDS restart needs one DBA's approval; a rollout runs at
/// once).
pub fn toml(script: &Path) -> String {
    let program = toml::Value::String(script.display().to_string());
    format!(
        r#"
{RDS_RESTART}

[[operations]]
verb = "rollout"
service = "deployment"
summary = "Restart a deployment (demo: a harmless script stands in for kubectl)"
provider = "local"
program = {program}
argv = ["{{namespace}}", "{{name}}"]
timeout = "10s"

[[operations.params]]
name = "namespace"
values = ["shop", "payments"]

[[operations.params]]
name = "name"
label = "<deployment>"
pattern = "^[a-z0-9]([a-z0-9-]{{0,61}}[a-z0-9])?$"
describe = "a deployment name (lowercase letters, digits and -)"

[targets.orders-rds]
service = "rds"
account = "huawei-prod"
instance_id = "{DEMO_RDS_INSTANCE}"
description = "orders MySQL on RDS (declared operation)"

[[rules]]
name = "rds restart"
command = "restart rds"
request_roles = ["oncall", "dba"]
channels = ["ops", "db-ops"]
approvals = 1
approver_roles = ["dba", "sre-lead"]

[[rules]]
name = "rollout restart"
command = "rollout deployment"
request_roles = ["oncall", "sre-lead"]
channels = ["ops"]
approvals = 0
"#
    )
}
