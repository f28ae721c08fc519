//! Software RAID (§11.2): `create_configuration`, `apply_configuration`,
//! `delete_configuration` with mdadm and sgdisk. Every holder disk and every
//! component partition must pass the allow-list.

use serde_json::{Map, Value};

use super::disks::{self, BlockDev};
use super::failures;
use super::steps::StepEnv;
use crate::errors::AgentError;
use crate::host::{CommandOutput, CommandSpec};

/// One validated logical disk.
#[derive(Debug, Clone, PartialEq)]
pub struct LogicalDisk {
    /// `raid_level` (`0`, `1`, `1+0`, `5`, `6`).
    pub level: String,
    /// Size in GiB; `None` for `MAX`.
    pub size_gb: Option<u64>,
    /// `volume_name` (default `md<i>`).
    pub name: String,
}

fn raid_err(msg: impl Into<String>) -> AgentError {
    failures::software_raid(msg)
}

/// Validates a RAID config as IPA's `validate_configuration` does.
pub fn validate(config: &Value, holder_count: usize) -> Result<Vec<LogicalDisk>, AgentError> {
    let disks = config
        .get("logical_disks")
        .and_then(Value::as_array)
        .ok_or_else(|| raid_err("The RAID configuration has no logical_disks list"))?;
    if disks.is_empty() || disks.len() > 2 {
        return Err(raid_err(
            "Software RAID configuration requires one or two logical disks",
        ));
    }
    let mut max_seen = false;
    let mut out = Vec::new();
    for (i, disk) in disks.iter().enumerate() {
        if disk.get("controller").and_then(Value::as_str) != Some("software") {
            return Err(raid_err(
                "Only software RAID (controller 'software') is supported",
            ));
        }
        let level = match disk.get("raid_level") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(raid_err("Each logical disk needs a raid_level")),
        };
        if i == 0 && level != "1" {
            return Err(raid_err(
                "Software RAID configuration requires RAID-1 for the first logical disk",
            ));
        }
        if !["0", "1", "1+0", "5", "6"].contains(&level.as_str()) {
            return Err(raid_err(format!(
                "RAID level {level} is not supported for software RAID"
            )));
        }
        let minimum = match level.as_str() {
            "5" => 3,
            "6" | "1+0" => 4,
            _ => 2,
        };
        if holder_count < minimum {
            return Err(raid_err(format!(
                "RAID level {level} requires at least {minimum} disks, {holder_count} available"
            )));
        }
        let size_gb = match disk.get("size_gb") {
            Some(Value::String(s)) if s == "MAX" => None,
            Some(Value::Number(n)) if n.as_u64().is_some() => n.as_u64(),
            _ => return Err(raid_err("size_gb must be a number of GiB or 'MAX'")),
        };
        if size_gb.is_none() {
            if max_seen {
                return Err(raid_err("Only one logical disk may have size_gb 'MAX'"));
            }
            max_seen = true;
        }
        if let Some(hints) = disk.get("physical_disks") {
            if hints.as_array().is_none_or(|h| h.len() < 2) {
                return Err(raid_err("physical_disks must list at least 2 disks"));
            }
        }
        out.push(LogicalDisk {
            level,
            size_gb,
            name: disk
                .get("volume_name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("md{i}")),
        });
    }
    if out.len() == 2 && out[0].size_gb.is_none() {
        return Err(raid_err(
            "Only the last logical disk may have size_gb 'MAX'",
        ));
    }
    Ok(out)
}

/// `/dev/sda` + 2 → `/dev/sda2`; `/dev/nvme0n1` + 2 → `/dev/nvme0n1p2`.
pub fn partition_path(disk: &str, n: usize) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{n}")
    } else {
        format!("{disk}{n}")
    }
}

async fn run(env: &StepEnv, args: &[&str], program: &str) -> Result<CommandOutput, AgentError> {
    let spec = CommandSpec::new(program, args.iter().copied());
    let line = spec.to_string();
    let out = env
        .runner
        .run(spec)
        .await
        .map_err(|e| raid_err(format!("{line}: {e}")))?;
    if out.success() {
        Ok(out)
    } else {
        Err(raid_err(format!(
            "{line} failed with {}: {}",
            out.describe_exit(),
            out.stderr.trim()
        )))
    }
}

async fn holders(env: &StepEnv) -> Result<(Vec<BlockDev>, Vec<BlockDev>), AgentError> {
    let all = disks::list_devices(env.runner.as_ref(), &env.allowlist, true)
        .await
        .map_err(|e| raid_err(format!("listing block devices: {e}")))?;
    let holders = all
        .iter()
        .filter(|d| d.is_disk() && !d.is_virtual_media() && !d.read_only)
        .cloned()
        .collect();
    Ok((all, holders))
}

/// Fails before any disk is partitioned when `mdadm` cannot run: without it the
/// partitioning would only leave the disks half-prepared.
async fn require_mdadm(env: &StepEnv) -> Result<(), AgentError> {
    match env
        .runner
        .run(CommandSpec::new("mdadm", ["--version"]))
        .await
    {
        Ok(out) if out.success() => Ok(()),
        Ok(out) => Err(raid_err(format!(
            "mdadm --version failed with {}: {} (no disk was partitioned)",
            out.describe_exit(),
            out.stderr.trim()
        ))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Err(raid_err(
            "mdadm is not installed: a software RAID cannot be created here \
             (no disk was partitioned)",
        )),
        Err(err) => Err(raid_err(format!(
            "cannot run mdadm ({err}) (no disk was partitioned)"
        ))),
    }
}

/// `create_configuration` / the create half of `apply_configuration`.
pub async fn create(env: &StepEnv, config: &Value) -> Result<Value, AgentError> {
    if config
        .get("logical_disks")
        .is_none_or(|l| l.as_array().is_none_or(Vec::is_empty))
    {
        tracing::info!("no target_raid_config: nothing to create");
        return Ok(Value::Object(Map::new()));
    }
    let (_, holders) = holders(env).await?;
    let logical = validate(config, holders.len())?;
    for disk in &holders {
        disks::check_allowed(&env.allowlist, &disk.path).map_err(|e| raid_err(e.to_string()))?;
    }
    require_mdadm(env).await?;
    for disk in &holders {
        let dev = disk.path.display().to_string();
        run(env, &["-Z", &dev], "sgdisk").await?;
        for (i, ld) in logical.iter().enumerate() {
            let n = i + 1;
            let end = match ld.size_gb {
                Some(gb) => format!("+{gb}G"),
                None => "0".to_string(),
            };
            run(
                env,
                &[&format!("-n{n}:0:{end}"), &format!("-t{n}:FD00"), &dev],
                "sgdisk",
            )
            .await?;
        }
    }
    let _ = env
        .runner
        .run(CommandSpec::new("udevadm", ["settle"]))
        .await;
    for (i, ld) in logical.iter().enumerate() {
        let components: Vec<String> = holders
            .iter()
            .map(|d| partition_path(&d.path.display().to_string(), i + 1))
            .collect();
        let md = format!("/dev/md{i}");
        let count = components.len().to_string();
        let level = if ld.level == "1+0" {
            "10"
        } else {
            ld.level.as_str()
        };
        let mut args = vec![
            "--create",
            &md,
            "--force",
            "--run",
            "--metadata=1",
            "--level",
            level,
            "--name",
            &ld.name,
            "--raid-devices",
            &count,
        ];
        args.extend(components.iter().map(String::as_str));
        run(env, &args, "mdadm").await?;
    }
    Ok(config.clone())
}

/// `delete_configuration`: stops every md array, zeroes its members' superblocks
/// and wipes the holder disks' partition tables.
pub async fn delete(env: &StepEnv) -> Result<Value, AgentError> {
    let (all, holders) = holders(env).await?;
    let arrays: Vec<&BlockDev> = all.iter().filter(|d| d.kind.starts_with("raid")).collect();
    let mut members: Vec<String> = Vec::new();
    for md in &arrays {
        let dev = md.path.display().to_string();
        let detail = run(env, &["--detail", &dev], "mdadm").await?;
        let components: Vec<String> = detail
            .stdout
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter(|w| w.starts_with("/dev/") && !w.ends_with(':') && *w != dev)
            .map(str::to_string)
            .collect();
        for c in &components {
            disks::check_allowed(&env.allowlist, std::path::Path::new(c))
                .map_err(|e| raid_err(e.to_string()))?;
        }
        run(env, &["--stop", &dev], "mdadm").await?;
        members.extend(components);
    }
    for d in all
        .iter()
        .filter(|d| d.fstype.as_deref() == Some("linux_raid_member"))
    {
        let p = d.path.display().to_string();
        if !members.contains(&p) {
            members.push(p);
        }
    }
    for member in &members {
        disks::check_allowed(&env.allowlist, std::path::Path::new(member))
            .map_err(|e| raid_err(e.to_string()))?;
        run(env, &["--zero-superblock", member], "mdadm").await?;
    }
    let member_disks: Vec<&BlockDev> = holders
        .iter()
        .filter(|h| {
            let p = h.path.display().to_string();
            members.iter().any(|m| m.starts_with(&p))
        })
        .collect();
    for disk in member_disks {
        let dev = disk.path.display().to_string();
        run(env, &["-af", &dev], "wipefs").await?;
    }
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ld(level: &str, size: Value) -> Value {
        json!({"raid_level": level, "size_gb": size, "controller": "software"})
    }

    #[test]
    fn validation_follows_the_software_raid_limits() {
        let ok = json!({"logical_disks": [ld("1", json!(10)), ld("0", json!("MAX"))]});
        assert_eq!(validate(&ok, 2).expect("valid").len(), 2);
        for (config, disks) in [
            (json!({"logical_disks": [ld("0", json!(10))]}), 2),
            (
                json!({"logical_disks": [ld("1", json!(10)), ld("5", json!("MAX"))]}),
                2,
            ),
            (
                json!({"logical_disks": [ld("1", json!(10)), ld("6", json!("MAX"))]}),
                3,
            ),
            (
                json!({"logical_disks": [ld("1", json!("MAX")), ld("0", json!("MAX"))]}),
                2,
            ),
            (
                json!({"logical_disks": [ld("1", json!(1)), ld("1", json!(1)), ld("1", json!(1))]}),
                2,
            ),
            (
                json!({"logical_disks": [{"raid_level": "1", "size_gb": 1, "controller": "hw"}]}),
                2,
            ),
            (json!({"logical_disks": [ld("1", json!(10))]}), 1),
        ] {
            let err = validate(&config, disks).expect_err("invalid");
            assert_eq!(err.error_type, "SoftwareRAIDError", "{config}");
        }
    }

    #[test]
    fn partition_names() {
        assert_eq!(partition_path("/dev/sda", 2), "/dev/sda2");
        assert_eq!(partition_path("/dev/nvme0n1", 1), "/dev/nvme0n1p1");
    }
}
