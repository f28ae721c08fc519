//! Bounded mutation fuzzing of the parsers that take hostile input, run as an ordinary
//! test on the stable toolchain (see `fuzz/README.md` for why not libFuzzer here).
//!
//! Each target starts from its corpus in `fuzz/corpus/<target>/`, mutates it (bit
//! flips, insertions of interesting bytes, deletions, duplications, splices between
//! seeds, deep nesting) with a fixed seed, and calls the real function. A panic is
//! caught, the input is saved to `target/reliability/crash-<target>.bin`, and the test
//! fails. Bounds: `FUZZ_ITERS` inputs (default 20 000) or `FUZZ_SECONDS` seconds
//! (default 10) per target, whichever comes first. Executions per target go to
//! `target/reliability/fuzz.json` for `docs/reliability.md`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::{rngs::StdRng, Rng, SeedableRng};
use serde_json::{json, Value};

type Target = fn(&[u8]);

fn api_command(data: &[u8]) {
    use ironic_agent_actors::coordinator::commands;
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    if let Some(name) = body.get("name").and_then(Value::as_str) {
        let _ = commands::lookup(name);
    }
    let params = body.get("params").cloned().unwrap_or(Value::Null);
    let _ = commands::validate_image_info(params.get("image_info"));
    let _ = commands::validate_flow(params.get("flow"));
    if let Some(step) = params.get("step") {
        let _ = ironic_agent_actors::state::command_label(
            "deploy.execute_deploy_step",
            params.as_object().unwrap_or(&serde_json::Map::new()),
        );
        let _ = step.get("args");
    }
    if let Ok(result) =
        serde_json::from_value::<ironic_agent_actors::command::CommandResult>(body.clone())
    {
        let _ = serde_json::to_vec(&result);
    }
}

fn config_ini(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ironic_agent::config::ini::parse(text, Path::new("fuzz.conf"));
    }
}

fn cmdline(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = ironic_agent::config::cmdline::parse(&text);
}

fn root_device_hints(data: &[u8]) {
    if let Ok(hints) = serde_json::from_slice::<Value>(data) {
        let _ = ironic_agent_actors::inspector::root_device::parse_hints(&hints);
    }
    let text = String::from_utf8_lossy(data);
    let _ = ironic_agent_actors::inspector::root_device::parse_spec(&text);
}

fn installer_progress(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.split(['\n', '\r']) {
        let _ = ironic_agent_actors::installer::coreos::parse_progress(line);
    }
}

fn ignition(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = ironic_agent::ignition::decode_data_url(&text);
    let _ = ironic_agent::ignition::parse_extra_option(&text);
    let value = serde_json::from_slice::<Value>(data).unwrap_or(Value::String(text.into()));
    let _ = ironic_agent_actors::installer::coreos::ignition_with_hostname(Some(&value), None);
    let _ = ironic_agent_actors::installer::coreos::ignition_with_hostname(
        Some(&value),
        Some("fuzz-host"),
    );
}

const TARGETS: &[(&str, Target)] = &[
    ("api_command", api_command),
    ("config_ini", config_ini),
    ("cmdline", cmdline),
    ("root_device_hints", root_device_hints),
    ("installer_progress", installer_progress),
    ("ignition", ignition),
];

const INTERESTING: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b"=",
    b"\n",
    b"\r",
    b"\0",
    b"\xff",
    b"\xc3",
    b"%",
    b">=",
    b"<in>",
    b"s==",
    b"<or>",
    b" ",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"null",
    b"true",
    b"[DEFAULT]",
    b"data:,",
    b"data:;base64,",
    b"GiB",
    b"/",
    b"(",
    b")",
    b"#",
];

fn mutate(rng: &mut StdRng, seeds: &[Vec<u8>], input: &mut Vec<u8>) {
    for _ in 0..rng.gen_range(1..=4) {
        match rng.gen_range(0..8) {
            0 if !input.is_empty() => {
                let at = rng.gen_range(0..input.len());
                input[at] ^= 1 << rng.gen_range(0..8);
            }
            1 => {
                let token = INTERESTING[rng.gen_range(0..INTERESTING.len())];
                let at = rng.gen_range(0..=input.len());
                input.splice(at..at, token.iter().copied());
            }
            2 if !input.is_empty() => {
                let start = rng.gen_range(0..input.len());
                let end = (start + rng.gen_range(1..=16)).min(input.len());
                input.drain(start..end);
            }
            3 if !input.is_empty() && input.len() < 64 * 1024 => {
                let start = rng.gen_range(0..input.len());
                let end = (start + rng.gen_range(1..=64)).min(input.len());
                let chunk: Vec<u8> = input[start..end].to_vec();
                let at = rng.gen_range(0..=input.len());
                input.splice(at..at, chunk);
            }
            4 => {
                let other = &seeds[rng.gen_range(0..seeds.len())];
                if !other.is_empty() {
                    let start = rng.gen_range(0..other.len());
                    let at = rng.gen_range(0..=input.len());
                    input.splice(at..at, other[start..].iter().copied());
                }
            }
            5 => {
                let depth = rng.gen_range(1..=300);
                let at = rng.gen_range(0..=input.len());
                let open = if rng.gen_bool(0.5) { b'[' } else { b'{' };
                input.splice(at..at, std::iter::repeat_n(open, depth));
            }
            6 if !input.is_empty() => {
                let at = rng.gen_range(0..input.len());
                input[at] = rng.gen();
            }
            _ => input.truncate(rng.gen_range(0..=input.len())),
        }
    }
}

fn load_corpus(dir: &Path) -> Vec<Vec<u8>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("read seed"))
        .collect()
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn parsers_survive_mutated_input() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = root.join("target/reliability");
    std::fs::create_dir_all(&out).expect("mkdir");
    let iters = env_number("FUZZ_ITERS", 20_000);
    let budget = Duration::from_secs(env_number("FUZZ_SECONDS", 10));
    // Panics are caught per input; keep the default hook from printing each one.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let mut figures = serde_json::Map::new();
    let mut crashes = Vec::new();
    for (index, (name, target)) in TARGETS.iter().enumerate() {
        let seeds = load_corpus(&root.join("fuzz/corpus").join(name));
        assert!(!seeds.is_empty(), "empty corpus for {name}");
        let mut rng = StdRng::seed_from_u64(0x1a0_11c + index as u64);
        let started = Instant::now();
        let mut executions = 0u64;
        let mut crash = None;
        for seed in &seeds {
            executions += 1;
            if catch_unwind(AssertUnwindSafe(|| target(seed))).is_err() {
                crash = Some(seed.clone());
            }
        }
        while crash.is_none() && executions < iters && started.elapsed() < budget {
            let mut input = seeds[rng.gen_range(0..seeds.len())].clone();
            mutate(&mut rng, &seeds, &mut input);
            executions += 1;
            if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
                crash = Some(input);
            }
        }
        if let Some(input) = &crash {
            let path = out.join(format!("crash-{name}.bin"));
            std::fs::write(&path, input).expect("save crash");
            crashes.push(format!("{name}: {}", path.display()));
        }
        figures.insert(
            name.to_string(),
            json!({"executions": executions,
                   "seconds": started.elapsed().as_secs_f64(),
                   "corpus_files": seeds.len(),
                   "crashes": usize::from(crash.is_some())}),
        );
    }
    std::panic::set_hook(hook);
    std::fs::write(
        out.join("fuzz.json"),
        serde_json::to_vec_pretty(&Value::Object(figures)).expect("json"),
    )
    .expect("write figures");
    assert!(crashes.is_empty(), "panicking inputs saved: {crashes:?}");
}
