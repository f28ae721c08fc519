//! Bounded mutation fuzzing of the parsers that take hostile input, run as an ordinary
//! test on the stable toolchain. The targets are those of the coverage-guided libFuzzer
//! run (`fuzz/src/lib.rs`, `fuzz/run.sh`); this loop is the cheap, always-built
//! complement that replays every corpus file in every `cargo test`.
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

#[path = "../fuzz/src/lib.rs"]
mod targets;

use targets::TARGETS;

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
    b" = ",
    b"*",
    b"SHA256 (",
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
