//! Choosing the install device: `get_os_install_device` (ipa-protocol.md §5.6).
//!
//! Hints come from `instance_info.root_device`, else `properties.root_device`;
//! devices matching a `properties.skip_block_devices` hint are removed; with no
//! hints the smallest disk of at least 4 GiB wins (sorted by size, then name); with
//! hints the first device in lsblk order matching all of them. Matching follows
//! ironic-lib's `parse_root_device_hints`/`find_devices_by_hints` and oslo's
//! `specs_matcher`.

use serde_json::Value;

use super::disks::DiskCandidate;
use super::inventory::BlockDevice;
use crate::errors::AgentError;

/// 4 GiB: the smallest disk `guess_root_disk` accepts.
pub const MIN_ROOT_DISK_BYTES: u64 = 4 << 30;

/// The type of a root-device hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HintKind {
    /// A string hint, compared lower-cased and URL-quoted.
    Str,
    /// An integer hint (`size`, in GiB).
    Int,
    /// A boolean hint (`rotational`).
    Bool,
}

/// The valid hint names and their types.
pub fn hint_kind(name: &str) -> Option<HintKind> {
    match name {
        "model"
        | "wwn"
        | "serial"
        | "vendor"
        | "wwn_with_extension"
        | "wwn_vendor_extension"
        | "name"
        | "hctl"
        | "by_path"
        | "tran" => Some(HintKind::Str),
        "size" => Some(HintKind::Int),
        "rotational" => Some(HintKind::Bool),
        _ => None,
    }
}

/// Operators of the specs_matcher grammar, in the grammar's match order.
const UNARY_OPS: [&str; 14] = [
    "==", "=", "!=", "<in>", ">=", "<=", ">", "<", "s==", "s!=", "s<=", "s<", "s>=", "s>",
];

/// Parses a spec like specs_matcher's grammar: `(op, operands)`; no operator gives
/// `("", [spec])`.
pub fn parse_spec(spec: &str) -> (String, Vec<String>) {
    let trimmed = spec.trim_start();
    let keyword = |s: &str| {
        s.starts_with("<or>")
            || s.starts_with("<all-in>")
            || UNARY_OPS.iter().any(|op| s.starts_with(op))
    };
    if trimmed.starts_with("<or>") {
        let mut atoms = Vec::new();
        let mut rest = trimmed;
        while let Some(after) = rest.strip_prefix("<or>") {
            let after = after.trim_start();
            let atom: String = after.chars().take_while(|c| !c.is_whitespace()).collect();
            if atom.is_empty() || keyword(&atom) {
                break;
            }
            rest = after[atom.len()..].trim_start();
            atoms.push(atom);
        }
        if !atoms.is_empty() {
            return ("<or>".to_string(), atoms);
        }
    } else if let Some(after) = trimmed.strip_prefix("<all-in>") {
        let atoms: Vec<String> = after
            .split_whitespace()
            .take_while(|a| !keyword(a))
            .map(str::to_string)
            .collect();
        if !atoms.is_empty() {
            return ("<all-in>".to_string(), atoms);
        }
    } else if let Some(op) = UNARY_OPS.iter().find(|op| trimmed.starts_with(**op)) {
        let after = trimmed[op.len()..].trim_start();
        let atom: String = after.chars().take_while(|c| !c.is_whitespace()).collect();
        if !atom.is_empty() && !keyword(&atom) {
            return (op.to_string(), vec![atom]);
        }
    }
    // No operator: the first atom, or the whole spec when it does not parse.
    (String::new(), vec![spec.to_string()])
}

/// oslo `specs_matcher.match(value, spec)`.
pub fn specs_match(value: &str, spec: &str) -> bool {
    let (op, args) = parse_spec(spec);
    if op.is_empty() {
        return value == spec;
    }
    let num = |s: &str| s.trim().parse::<f64>().ok();
    let cmp_num = |f: fn(f64, f64) -> bool| match (num(value), num(&args[0])) {
        (Some(a), Some(b)) => f(a, b),
        _ => false,
    };
    match op.as_str() {
        "=" | ">=" => cmp_num(|a, b| a >= b),
        "==" => cmp_num(|a, b| a == b),
        "!=" => cmp_num(|a, b| a != b),
        "<=" => cmp_num(|a, b| a <= b),
        "<" => cmp_num(|a, b| a < b),
        ">" => cmp_num(|a, b| a > b),
        "s==" => value == args[0],
        "s!=" => value != args[0],
        "s<" => value < args[0].as_str(),
        "s<=" => value <= args[0].as_str(),
        "s>" => value > args[0].as_str(),
        "s>=" => value >= args[0].as_str(),
        "<in>" => value.contains(args[0].as_str()),
        "<or>" => args.iter().any(|a| a == value),
        "<all-in>" => args.iter().all(|a| value.contains(a.as_str())),
        _ => false,
    }
}

/// Python's `urllib.parse.quote(s)` (safe characters: letters, digits, `_.-~/`).
pub fn url_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Python's `str()` of a JSON value, as ironic-lib applies it.
fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".to_string(),
        Value::Bool(true) => "True".to_string(),
        Value::Bool(false) => "False".to_string(),
        other => other.to_string(),
    }
}

/// ironic-lib `_extract_hint_operator_and_values`: `(op, values)` of a lower-cased
/// expression; an empty expression is an error.
fn extract(expression: &str, hint: &str) -> Result<(String, Vec<String>), String> {
    let expression = expression.trim().to_lowercase();
    if expression.is_empty() {
        return Err(format!("Root device hint \"{hint}\" expression is empty"));
    }
    let (op, _) = parse_spec(&expression);
    if op.is_empty() {
        return Ok((String::new(), vec![expression]));
    }
    let values = expression
        .split(op.as_str())
        .filter(|v| !v.is_empty())
        .map(|v| v.trim().to_string())
        .collect();
    Ok((op, values))
}

/// ironic-lib `_normalize_hint_expression`: lower-case and URL-quote the operands.
pub fn normalize_expression(expression: &str, hint: &str) -> Result<String, String> {
    let (op, values) = extract(expression, hint)?;
    let joined = values
        .iter()
        .map(|v| format!(" {} ", url_quote(v)))
        .collect::<Vec<_>>()
        .join(&op);
    Ok(format!("{op}{joined}").trim().to_string())
}

/// oslo `bool_from_string(strict=True)`.
fn strict_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        other => match py_str(other).trim().to_lowercase().as_str() {
            "1" | "t" | "true" | "on" | "y" | "yes" => Some(true),
            "0" | "f" | "false" | "off" | "n" | "no" => Some(false),
            _ => None,
        },
    }
}

/// A validated hint.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedHint {
    /// A string hint with its normalized spec.
    Str(String, String),
    /// `size` with its spec (GiB).
    Int(String, String),
    /// `rotational`.
    Bool(String, bool),
}

/// ironic-lib `parse_root_device_hints`: validates and normalizes; `Ok(vec![])` for none.
pub fn parse_hints(hints: &Value) -> Result<Vec<ParsedHint>, String> {
    let Some(map) = hints.as_object() else {
        return if hints.is_null() {
            Ok(Vec::new())
        } else {
            Err(format!("root device hints must be an object, got {hints}"))
        };
    };
    let mut invalid: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|k| hint_kind(k).is_none())
        .collect();
    if !invalid.is_empty() {
        invalid.sort();
        return Err(format!(
            "The hints \"{}\" are invalid. Valid hints are: \"by_path, hctl, model, name, \
             rotational, serial, size, tran, vendor, wwn, wwn_vendor_extension, \
             wwn_with_extension\"",
            invalid.join(", ")
        ));
    }
    let mut out = Vec::new();
    for (name, expression) in map {
        match hint_kind(name) {
            Some(HintKind::Str) => {
                let Value::String(expr) = expression else {
                    return Err(format!(
                        "Root device hint \"{name}\" is not a string value. Hint expression: {}",
                        py_str(expression)
                    ));
                };
                let normalized = normalize_expression(expr, name)?;
                let (op, _) = parse_spec(&normalized);
                let spec = if op.is_empty() {
                    format!("s== {normalized}")
                } else {
                    normalized
                };
                out.push(ParsedHint::Str(name.clone(), spec));
            }
            Some(HintKind::Int) => {
                let raw = py_str(expression);
                let (op, values) = extract(&raw, name)?;
                for v in &values {
                    let int: i64 = v.parse().map_err(|_| {
                        format!(
                            "Root device hint \"{name}\" is not an integer value. Current value: {raw}"
                        )
                    })?;
                    if int <= 0 {
                        return Err(format!(
                            "Root device hint \"{name}\" should be a positive integer. Current value: {raw}"
                        ));
                    }
                }
                let spec = if op.is_empty() {
                    format!("== {raw}")
                } else {
                    raw
                };
                out.push(ParsedHint::Int(name.clone(), spec));
            }
            Some(HintKind::Bool) => {
                let b = strict_bool(expression).ok_or_else(|| {
                    format!(
                        "Root device hint \"{name}\" is not a Boolean value. Current value: {}",
                        py_str(expression)
                    )
                })?;
                out.push(ParsedHint::Bool(name.clone(), b));
            }
            None => unreachable!("checked above"),
        }
    }
    Ok(out)
}

/// The device's value for a string hint; `serial` and `wwn` are lists (IPA's
/// all-values mode: lsblk's and udev's values).
fn device_value(c: &DiskCandidate, hint: &str) -> Value {
    let d = &c.device;
    let opt = |v: &Option<String>| v.clone().map(Value::String).unwrap_or(Value::Null);
    let list = |all: &[String], single: &Option<String>| {
        let mut values: Vec<Value> = all.iter().cloned().map(Value::String).collect();
        if values.is_empty() {
            values.extend(single.clone().map(Value::String));
        }
        Value::Array(values)
    };
    match hint {
        "serial" => list(&c.all_serials, &d.serial),
        "wwn" => list(&c.all_wwns, &d.wwn),
        "model" => opt(&d.model),
        "vendor" => opt(&d.vendor),
        "wwn_with_extension" => opt(&d.wwn_with_extension),
        "wwn_vendor_extension" => opt(&d.wwn_vendor_extension),
        "name" => Value::String(d.name.clone()),
        "hctl" => opt(&d.hctl),
        "by_path" => opt(&d.by_path),
        "tran" => opt(&d.tran),
        _ => Value::Null,
    }
}

/// Whether a device matches every parsed hint (ironic-lib `find_devices_by_hints`).
pub fn device_matches(c: &DiskCandidate, hints: &[ParsedHint]) -> bool {
    hints.iter().all(|hint| match hint {
        ParsedHint::Str(name, spec) => match device_value(c, name) {
            // A list matches when any non-null, non-empty value matches.
            Value::Array(values) => values
                .iter()
                .filter(|v| !v.is_null())
                .filter_map(|v| normalize_expression(&py_str(v), name).ok())
                .any(|v| specs_match(&v, spec)),
            // A single value: Python's str() of it (null is "None"); empty skips.
            value => match normalize_expression(&py_str(&value), name) {
                Ok(v) => specs_match(&v, spec),
                Err(_) => {
                    tracing::debug!(
                        "the attribute {name} of {} is empty; skipping the device",
                        c.device.name
                    );
                    false
                }
            },
        },
        ParsedHint::Int(_, spec) => {
            let gib = c.device.size as f64 / (1u64 << 30) as f64;
            // IPA compares a float here: numeric operators convert both sides, `s!=` is
            // always true, and `s==`/`<or>` (float against strings) never match; the
            // other string operators raise in IPA, so they match nothing here.
            match parse_spec(spec).0.as_str() {
                "=" | "==" | "!=" | "<=" | "<" | ">=" | ">" => specs_match(&format!("{gib}"), spec),
                "s!=" => true,
                _ => false,
            }
        }
        ParsedHint::Bool(_, want) => c.device.rotational == *want,
    })
}

/// The first candidate, in order, matching all hints.
pub fn find_by_hints<'a>(
    candidates: &'a [DiskCandidate],
    hints: &Value,
) -> Result<Option<&'a DiskCandidate>, String> {
    let parsed = parse_hints(hints)?;
    Ok(candidates.iter().find(|c| device_matches(c, &parsed)))
}

/// IPA's `guess_root_disk`: the smallest device of at least 4 GiB, by (size, name).
pub fn guess_root_disk(devices: &[BlockDevice]) -> Result<BlockDevice, AgentError> {
    let mut sorted: Vec<&BlockDevice> = devices.iter().collect();
    sorted.sort_by(|a, b| (a.size, &a.name).cmp(&(b.size, &b.name)));
    sorted
        .into_iter()
        .find(|d| d.size >= MIN_ROOT_DISK_BYTES)
        .cloned()
        .ok_or_else(|| {
            AgentError::device_not_found(format!(
                "No suitable device was found for deployment - root device hints were not \
                 provided and all found block devices are smaller than {MIN_ROOT_DISK_BYTES}B."
            ))
        })
}

/// The node's root device hints: `instance_info.root_device`, else
/// `properties.root_device` (empty values count as none).
pub fn node_hints(node: &Value) -> Option<Value> {
    let pick = |v: Option<&Value>| {
        v.filter(|h| match h {
            Value::Null => false,
            Value::Object(m) => !m.is_empty(),
            Value::String(s) => !s.is_empty(),
            _ => true,
        })
        .cloned()
    };
    pick(node.pointer("/instance_info/root_device"))
        .or_else(|| pick(node.pointer("/properties/root_device")))
}

/// Removes the devices matching `properties.skip_block_devices` (hints with
/// `volume_name` are RAID volumes and ignored here).
pub fn apply_skip_list(
    node: &Value,
    candidates: Vec<DiskCandidate>,
) -> Result<Vec<DiskCandidate>, String> {
    let Some(skips) = node
        .pointer("/properties/skip_block_devices")
        .and_then(Value::as_array)
    else {
        return Ok(candidates);
    };
    let mut parsed = Vec::new();
    for hint in skips {
        if hint.get("volume_name").is_some() {
            continue;
        }
        parsed.push(parse_hints(hint)?);
    }
    Ok(candidates
        .into_iter()
        .filter(|c| {
            let skip = parsed.iter().any(|h| device_matches(c, h));
            if skip {
                tracing::info!("skipping {} as asked by skip_block_devices", c.device.name);
            }
            !skip
        })
        .collect())
}

/// `get_os_install_device` for a node: skip list, then hints or `guess_root_disk`.
pub fn choose_install_device(
    node: &Value,
    candidates: Vec<DiskCandidate>,
) -> Result<BlockDevice, AgentError> {
    let candidates = apply_skip_list(node, candidates).map_err(|e| {
        AgentError::device_not_found(format!("Invalid skip_block_devices hints: {e}"))
    })?;
    match node_hints(node) {
        None => {
            let devices: Vec<BlockDevice> = candidates.into_iter().map(|c| c.device).collect();
            guess_root_disk(&devices)
        }
        Some(hints) => match find_by_hints(&candidates, &hints) {
            Ok(Some(found)) => Ok(found.device.clone()),
            Ok(None) => Err(AgentError::device_not_found(format!(
                "No suitable device was found for deployment using these hints {hints}"
            ))),
            Err(e) => Err(AgentError::device_not_found(format!(
                "No devices could be found using the root device hints {hints} because they \
                 failed to validate. Error: {e}"
            ))),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GIB: u64 = 1 << 30;

    fn dev(name: &str, size_gib: u64) -> DiskCandidate {
        DiskCandidate {
            device: BlockDevice {
                name: format!("/dev/{name}"),
                size: size_gib * GIB,
                ..BlockDevice::default()
            },
            ..DiskCandidate::default()
        }
    }

    fn disks() -> Vec<DiskCandidate> {
        let mut sda = dev("sda", 100);
        sda.device.model = Some("Samsung SSD 860".into());
        sda.device.serial = Some("S3Z1NB0K".into());
        sda.all_serials = vec!["S3Z1NB0K".into(), "Samsung_SSD_860_S3Z1NB0K".into()];
        sda.device.wwn = Some("0x5002538e40a1b2c3".into());
        sda.all_wwns = vec!["0x5002538e40a1b2c3".into(), "0x5002538e40a1b2c4".into()];
        sda.device.vendor = Some("ATA".into());
        sda.device.hctl = Some("0:0:0:0".into());
        sda.device.by_path = Some("/dev/disk/by-path/pci-0000:00:17.0-ata-1".into());
        sda.device.tran = Some("sata".into());
        sda.device.wwn_with_extension = Some("0x5002538e40a1b2c3ext".into());
        sda.device.wwn_vendor_extension = Some("0xext".into());
        let mut sdb = dev("sdb", 20);
        sdb.device.rotational = true;
        sdb.device.model = Some("ST2000".into());
        sdb.device.vendor = Some("SEAGATE".into());
        sdb.device.tran = Some("sas".into());
        let mut nvme = dev("nvme0n1", 20);
        nvme.device.model = Some("Dell Ent NVMe".into());
        nvme.device.tran = Some("nvme".into());
        vec![sda, sdb, nvme, dev("sdc", 3)]
    }

    fn pick(hints: Value) -> Result<String, AgentError> {
        choose_install_device(&json!({"instance_info": {"root_device": hints}}), disks())
            .map(|d| d.name)
    }

    #[test]
    fn inspector_root_no_hints_picks_smallest_over_4gib_by_size_then_name() {
        let d = choose_install_device(&json!({}), disks()).expect("found");
        assert_eq!(d.name, "/dev/nvme0n1");
        let err = choose_install_device(&json!({}), vec![dev("sda", 3)]).expect_err("too small");
        assert_eq!(err.error_type, "DeviceNotFound");
        assert!(err.details.contains("smaller than 4294967296B"));
        let err = choose_install_device(&json!({}), vec![]).expect_err("none");
        assert!(
            err.details.contains("smaller than 4294967296B"),
            "{}",
            err.details
        );
        // Exactly 4 GiB qualifies.
        let d = choose_install_device(&json!({}), vec![dev("sdz", 4), dev("sdy", 5)]).expect("4");
        assert_eq!(d.name, "/dev/sdz");
    }

    #[test]
    fn inspector_root_string_hints_every_field() {
        assert_eq!(
            pick(json!({"model": "samsung ssd 860"})).expect("m"),
            "/dev/sda"
        );
        assert_eq!(
            pick(json!({"model": "Dell Ent NVMe"})).expect("m"),
            "/dev/nvme0n1"
        );
        assert_eq!(pick(json!({"serial": "S3Z1NB0K"})).expect("s"), "/dev/sda");
        // All-values mode: udev's serial and WWN match too.
        assert_eq!(
            pick(json!({"serial": "samsung_ssd_860_s3z1nb0k"})).expect("s"),
            "/dev/sda"
        );
        assert_eq!(
            pick(json!({"wwn": "0x5002538E40A1B2C4"})).expect("w"),
            "/dev/sda"
        );
        assert_eq!(pick(json!({"vendor": "seagate"})).expect("v"), "/dev/sdb");
        assert_eq!(pick(json!({"name": "/dev/sdb"})).expect("n"), "/dev/sdb");
        assert_eq!(pick(json!({"hctl": "0:0:0:0"})).expect("h"), "/dev/sda");
        assert_eq!(
            pick(json!({"by_path": "/dev/disk/by-path/pci-0000:00:17.0-ata-1"})).expect("b"),
            "/dev/sda"
        );
        assert_eq!(pick(json!({"tran": "nvme"})).expect("t"), "/dev/nvme0n1");
        assert_eq!(
            pick(json!({"wwn_with_extension": "0x5002538e40a1b2c3ext"})).expect("we"),
            "/dev/sda"
        );
        assert_eq!(
            pick(json!({"wwn_vendor_extension": "0xEXT"})).expect("wv"),
            "/dev/sda"
        );
        let err = pick(json!({"model": "nothing like it"})).expect_err("no match");
        assert_eq!(err.error_type, "DeviceNotFound");
        assert!(err.details.contains("using these hints"));
    }

    #[test]
    fn inspector_root_string_operators() {
        assert_eq!(
            pick(json!({"model": "s== st2000"})).expect("s=="),
            "/dev/sdb"
        );
        assert_eq!(
            pick(json!({"model": "s!= samsung ssd 860"})).expect("s!="),
            "/dev/sdb"
        );
        assert_eq!(pick(json!({"model": "<in> ssd"})).expect("in"), "/dev/sda");
        assert_eq!(
            pick(json!({"model": "<in> NVMe"})).expect("in"),
            "/dev/nvme0n1"
        );
        assert_eq!(
            pick(json!({"model": "<or> nope <or> st2000 <or> dell ent nvme"})).expect("or"),
            "/dev/sdb"
        );
        assert!(pick(json!({"tran": "s> sata"})).is_err());
        assert_eq!(pick(json!({"tran": "s< sata"})).expect("s<"), "/dev/sdb");
        assert_eq!(
            pick(json!({"tran": "s<= nvme"})).expect("s<="),
            "/dev/nvme0n1"
        );
        assert_eq!(pick(json!({"tran": "s>= sata"})).expect("s>="), "/dev/sda");
        // A device with no value for a hinted field does not match (Python's "None").
        assert!(pick(json!({"hctl": "s!= 0:0:0:0"})).is_ok());
    }

    #[test]
    fn inspector_root_size_and_numeric_operators() {
        assert_eq!(pick(json!({"size": 100})).expect("=="), "/dev/sda");
        assert_eq!(pick(json!({"size": "20"})).expect("== str"), "/dev/sdb");
        assert_eq!(pick(json!({"size": "== 20"})).expect("=="), "/dev/sdb");
        assert_eq!(pick(json!({"size": ">= 50"})).expect(">="), "/dev/sda");
        assert_eq!(pick(json!({"size": "> 20"})).expect(">"), "/dev/sda");
        assert_eq!(pick(json!({"size": "< 20"})).expect("<"), "/dev/sdc");
        assert_eq!(pick(json!({"size": "<= 20"})).expect("<="), "/dev/sdb");
        assert_eq!(pick(json!({"size": "!= 100"})).expect("!="), "/dev/sdb");
        // IPA compares the float size with the strings of <or>: never a match; `s!=`
        // always matches.
        assert!(pick(json!({"size": "<or> 3 <or> 100"})).is_err());
        assert!(pick(json!({"size": "s== 100"})).is_err());
        assert_eq!(pick(json!({"size": "s!= 100"})).expect("s!="), "/dev/sda");
        assert_eq!(pick(json!({"size": "= 21"})).expect("= is >="), "/dev/sda");
        for bad in [
            json!({"size": 0}),
            json!({"size": -1}),
            json!({"size": "big"}),
        ] {
            let err = pick(bad).expect_err("invalid size");
            assert!(
                err.details.contains("failed to validate"),
                "{}",
                err.details
            );
        }
    }

    #[test]
    fn inspector_root_rotational_strict_bool() {
        assert_eq!(pick(json!({"rotational": true})).expect("t"), "/dev/sdb");
        assert_eq!(pick(json!({"rotational": "yes"})).expect("yes"), "/dev/sdb");
        assert_eq!(pick(json!({"rotational": "0"})).expect("0"), "/dev/sda");
        assert_eq!(
            pick(json!({"rotational": false, "size": 20})).expect("and"),
            "/dev/nvme0n1"
        );
        assert!(pick(json!({"rotational": "maybe"})).is_err());
    }

    #[test]
    fn inspector_root_invalid_hints_and_sources() {
        let err = pick(json!({"colour": "red"})).expect_err("unknown name");
        assert_eq!(err.error_type, "DeviceNotFound");
        assert!(err.details.contains("colour"));
        assert!(pick(json!({"model": 5})).is_err(), "non-string string hint");
        assert!(pick(json!({"model": ""})).is_err(), "empty expression");
        // properties.root_device when instance_info has none; instance_info wins.
        let node = json!({"instance_info": {}, "properties": {"root_device": {"size": 20}}});
        assert_eq!(
            choose_install_device(&node, disks()).expect("p").name,
            "/dev/sdb"
        );
        let node = json!({"instance_info": {"root_device": {"name": "/dev/sda"}},
                          "properties": {"root_device": {"size": 20}}});
        assert_eq!(
            choose_install_device(&node, disks()).expect("i").name,
            "/dev/sda"
        );
    }

    #[test]
    fn inspector_root_skip_block_devices() {
        let node = json!({"properties": {"skip_block_devices": [
            {"name": "/dev/nvme0n1"}, {"volume_name": "raid-root"}]}});
        assert_eq!(
            choose_install_device(&node, disks()).expect("skip").name,
            "/dev/sdb"
        );
        let node = json!({"properties": {"skip_block_devices": [{"size": "<= 20"}],
                          "root_device": {"size": 20}}});
        assert!(choose_install_device(&node, disks()).is_err());
        let node = json!({"properties": {"skip_block_devices": [{"bogus": 1}]}});
        assert!(choose_install_device(&node, disks()).is_err());
    }

    #[test]
    fn inspector_root_grammar_and_quoting() {
        assert_eq!(
            url_quote("Samsung SSD 860/x:y"),
            "Samsung%20SSD%20860/x%3Ay"
        );
        assert_eq!(
            normalize_expression("<OR> Foo Bar <or> baz", "model").expect("n"),
            "<or> foo%20bar <or> baz"
        );
        assert_eq!(
            normalize_expression("s== A B", "model").expect("n"),
            "s== a%20b"
        );
        assert_eq!(
            parse_spec("<= 5"),
            ("<=".to_string(), vec!["5".to_string()])
        );
        assert_eq!(
            parse_spec("s>= x"),
            ("s>=".to_string(), vec!["x".to_string()])
        );
        assert_eq!(
            parse_spec("plain"),
            (String::new(), vec!["plain".to_string()])
        );
        assert!(specs_match("abc", "<all-in> a c"));
        assert!(!specs_match("abc", "<all-in> a d"));
        assert!(specs_match("2.5", "> 2"));
        assert!(!specs_match("x", "> 2"));
    }
}
