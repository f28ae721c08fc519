//! Issue 8 / issue 9 scenario 5, the converged (assisted) flow end to end: the REAL
//! Ironic 39 conductor runs the custom deploy step `start_assisted_install` on the BUILT
//! agent, which starts `agent.service` on a REAL private systemd (its bus given as
//! `DBUS_SYSTEM_BUS_ADDRESS`) and reports how the unit ended.
//! - the unit exits 0 → node `active`;
//! - the unit exits 3 → node `deploy failed`, `last_error` naming the unit's result
//!   (`exit-code`) and status 3, and the conductor collects our logs (a valid tar.gz).
//!
//! Both cases run in parallel on one conductor (two nodes, two agents, two private
//! systemds, since each has its own `agent.service`). Each prints the time from the
//! unit's exit to the node's final state: the agent's immediate heartbeat makes that
//! about a second instead of a heartbeat interval (printed, not asserted).

mod support;

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};
use support::conductor::{
    collected_deploy_logs, conductor_called, deploy_with_step, diagnosis, expect_state,
    last_error_of, one_ironic, AgentSetup, ConductorAgent, STATE_TIMEOUT,
};
use support::fixture::poll_until;
use support::ironic::{IronicOptions, IronicSandbox};
use support::systemd::{prerequisites, PrivateSystemd, ASSISTED_UNITS};

/// The unit the step starts (`ASSISTED_AGENT_UNIT` in the CoreOS manager).
const UNIT: &str = "agent.service";

/// How long the stand-in assisted agent runs before exiting.
const UNIT_SECONDS: f64 = 2.0;

/// Ironic's API is polled this often once the unit has exited.
const STATE_POLL: Duration = Duration::from_millis(20);

/// One node deployed with `start_assisted_install` against its own private systemd.
struct Case {
    name: &'static str,
    mac: &'static str,
    exit_code: i32,
    final_state: &'static str,
}

/// What a finished case hands back for its assertions.
struct Finished {
    node: String,
    agent: ConductorAgent,
    done: Value,
    exit_to_final: Duration,
}

/// Deploys one node and waits until it reaches `case.final_state`.
fn run_case(ironic: &IronicSandbox, case: &Case) -> Finished {
    let systemd = PrivateSystemd::start_with_units(case.name, true, &[ASSISTED_UNITS]);
    systemd.configure_agent(UNIT_SECONDS, case.exit_code);
    let node = ironic.available_node(case.name, case.mac, STATE_TIMEOUT);
    deploy_with_step(ironic, &node, "start_assisted_install", json!({}));
    let agent = ConductorAgent::start(
        &ironic.url(),
        case.mac,
        AgentSetup::plain_http().env("DBUS_SYSTEM_BUS_ADDRESS", &systemd.address),
    );

    let exited = poll_until(STATE_TIMEOUT, Duration::from_millis(10), || {
        systemd.exit_stamp(UNIT)
    })
    .unwrap_or_else(|| {
        panic!(
            "{}: {UNIT} never ran to its end\n{}",
            case.name,
            diagnosis(ironic, &node, Some(&agent))
        )
    });
    // The node leaves `wait call-back` on the heartbeat after the command ended.
    poll_until(Duration::from_secs(30), STATE_POLL, || {
        let node = ironic.node(&node).ok()?;
        (node["provision_state"] != "wait call-back" && node["provision_state"] != "deploying")
            .then_some(())
    });
    let exit_to_final = SystemTime::now().duration_since(exited).unwrap_or_default();
    let done = expect_state(ironic, &node, &[case.final_state], STATE_TIMEOUT, &agent);
    eprintln!(
        "{}: {UNIT} exit {} → node `{}` in {:.0} ms (Ironic API polled every {} ms)",
        case.name,
        case.exit_code,
        case.final_state,
        exit_to_final.as_secs_f64() * 1000.0,
        STATE_POLL.as_millis()
    );
    Finished {
        node,
        agent,
        done,
        exit_to_final,
    }
}

#[test]
fn start_assisted_install_reports_the_units_end_to_the_conductor() {
    if !prerequisites() {
        return;
    }
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let succeeding = Case {
        name: "assisted-ok",
        mac: "02:fc:00:00:a5:01",
        exit_code: 0,
        final_state: "active",
    };
    let failing = Case {
        name: "assisted-exit3",
        mac: "02:fc:00:00:a5:02",
        exit_code: 3,
        final_state: "deploy failed",
    };
    let (ok, failed) = std::thread::scope(|scope| {
        let ok = scope.spawn(|| run_case(&ironic, &succeeding));
        let failed = scope.spawn(|| run_case(&ironic, &failing));
        (
            ok.join().unwrap_or_else(|e| std::panic::resume_unwind(e)),
            failed
                .join()
                .unwrap_or_else(|e| std::panic::resume_unwind(e)),
        )
    });

    assert!(conductor_called(&ironic, "deploy.execute_deploy_step"));
    for finished in [&ok, &failed] {
        let logs = finished.agent.logs();
        assert!(
            logs.contains(&format!("started {UNIT}; waiting for it to finish")),
            "the agent never started {UNIT}:\n{logs}"
        );
    }

    // exit 0: the step succeeded and the deploy finished.
    assert_eq!(ok.done["provision_state"], "active", "{}", ok.done);
    let logs = ok.agent.logs();
    assert!(
        logs.contains(&format!("{UNIT} finished successfully")),
        "{logs}"
    );

    // exit 3: the unit's result and status reach the node's last_error.
    let last_error = last_error_of(&ironic, &failed.node, failed.done.clone());
    for needle in [
        "start_assisted_install",
        UNIT,
        "Result=exit-code",
        "status 3",
    ] {
        assert!(
            last_error.contains(needle),
            "last_error lacks {needle:?}: {last_error:?}\n{}",
            diagnosis(&ironic, &failed.node, Some(&failed.agent))
        );
    }
    eprintln!("last_error of {}: {last_error}", failing.name);
    // ...and the conductor collected our logs on that failure.
    let (stored, members) = collected_deploy_logs(&ironic, &failed.node);
    eprintln!(
        "collected deploy logs {} ({} members)",
        stored.display(),
        members.len()
    );

    // The immediate heartbeat: the agent forces one when the step's command ends, so
    // Ironic learns at once. Figures only (benchmarks make performance claims).
    let to_heartbeat: Vec<f64> = [&ok, &failed]
        .iter()
        .map(|finished| command_end_to_forced_heartbeat_ms(&finished.agent.logs()))
        .collect();
    eprintln!(
        "unit exit → final node state: exit 0 {:.0} ms, exit 3 {:.0} ms; \
         command end → forced heartbeat accepted: {:.0} ms, {:.0} ms \
         (periodic heartbeats: every ~3-5 s here)",
        ok.exit_to_final.as_secs_f64() * 1000.0,
        failed.exit_to_final.as_secs_f64() * 1000.0,
        to_heartbeat[0],
        to_heartbeat[1],
    );
}

/// In the agent's log: from `execute_deploy_step` finishing to the acceptance of the
/// heartbeat it forced, in ms. Panics when no heartbeat was forced after the command.
fn command_end_to_forced_heartbeat_ms(logs: &str) -> f64 {
    let lines: Vec<&str> = logs.lines().collect();
    let after =
        |from: usize, needle: &str| (from..lines.len()).find(|&i| lines[i].contains(needle));
    let ended = lines
        .iter()
        .position(|l| {
            l.contains("command.name=execute_deploy_step") && l.contains("command finished")
        })
        .unwrap_or_else(|| panic!("the deploy step's command never finished:\n{logs}"));
    let forced = after(ended, "forced heartbeat")
        .unwrap_or_else(|| panic!("no heartbeat was forced after the command ended:\n{logs}"));
    let accepted = after(forced, "heartbeat accepted")
        .unwrap_or_else(|| panic!("the forced heartbeat was never accepted:\n{logs}"));
    let seconds = |i: usize| {
        log_seconds_of_day(lines[i]).unwrap_or_else(|| panic!("no timestamp: {}", lines[i]))
    };
    // A day wraps at most once between two nearby lines.
    (seconds(accepted) - seconds(ended)).rem_euclid(86_400.0) * 1000.0
}

/// Seconds since midnight UTC of a log line's leading RFC 3339 timestamp
/// (`2026-11-26T03:39:00.356542Z ...`).
fn log_seconds_of_day(line: &str) -> Option<f64> {
    let stamp = line.split_whitespace().next()?;
    let (_, clock) = stamp.split_once('T')?;
    let mut parts = clock.trim_end_matches('Z').split(':');
    let hours: f64 = parts.next()?.parse().ok()?;
    let minutes: f64 = parts.next()?.parse().ok()?;
    let seconds: f64 = parts.next()?.parse().ok()?;
    Some(hours * 3600.0 + minutes * 60.0 + seconds)
}
