//! Actor-level tests of the coordinator with the skeleton worker actors,
//! a recording heartbeat receiver, a recording API stopper, a fake host
//! command runner and a recording power control.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::{Actor, Addr, Context, Handler};
use serde_json::{json, Map, Value};

use ironic_agent_actors::api::StopServing;
use ironic_agent_actors::command::{CommandResult, CommandStatus};
use ironic_agent_actors::config::{AgentConfig, HostPaths};
use ironic_agent_actors::coordinator::{
    AttachApiControl, CacheNode, Coordinator, DrainCommands, GetCachedNode, GetCommand,
    ListCommands, Peers, RunCommand,
};
use ironic_agent_actors::errors::AgentError;
use ironic_agent_actors::hardware::{
    CoreOSInstallHardwareManager, GenericHardwareManager, HardwareManager, ManagerSet,
    TestingHardwareManager,
};
use ironic_agent_actors::host::{BoxFuture, CommandOutput, CommandRunner, CommandSpec};
use ironic_agent_actors::inspector::HardwareInspector;
use ironic_agent_actors::installer::InstallerRunner;
use ironic_agent_actors::ironic::{ForceHeartbeat, IronicClient};
use ironic_agent_actors::power::{PowerAction, PowerControl};
use ironic_agent_actors::systemd::SystemdSupervisor;

/// Counts forced heartbeats.
struct HeartbeatRecorder(Arc<AtomicUsize>);

impl Actor for HeartbeatRecorder {
    type Context = Context<Self>;
}

impl Handler<ForceHeartbeat> for HeartbeatRecorder {
    type Result = ();
    fn handle(&mut self, _msg: ForceHeartbeat, _ctx: &mut Self::Context) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Counts API stop requests.
struct ApiRecorder(Arc<AtomicUsize>);

impl Actor for ApiRecorder {
    type Context = Context<Self>;
}

impl Handler<StopServing> for ApiRecorder {
    type Result = ();
    fn handle(&mut self, _msg: StopServing, _ctx: &mut Self::Context) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Records every command; programs in `failing` exit 1, others exit 0.
#[derive(Debug, Default)]
struct FakeRunner {
    calls: Mutex<Vec<Vec<String>>>,
    failing: Mutex<BTreeSet<String>>,
}

impl FakeRunner {
    fn fail(&self, program: &str) {
        self.failing
            .lock()
            .expect("lock")
            .insert(program.to_string());
    }
    fn calls(&self) -> Vec<Vec<String>> {
        self.calls.lock().expect("lock").clone()
    }
}

impl CommandRunner for FakeRunner {
    fn run(&self, spec: CommandSpec) -> BoxFuture<'static, std::io::Result<CommandOutput>> {
        self.calls.lock().expect("lock").push(spec.argv());
        let fails = self.failing.lock().expect("lock").contains(&spec.program);
        let program = spec.program.clone();
        Box::pin(async move {
            Ok(CommandOutput {
                code: Some(i32::from(fails)),
                // lsblk: an empty device list (delete_configuration, run before
                // install_coreos, finds no RAID to delete).
                stdout: if program == "lsblk" {
                    "{\"blockdevices\": []}\n".to_string()
                } else {
                    format!("output of {program}, long enough to be a real journal\n")
                },
                stderr: if fails {
                    "it broke".into()
                } else {
                    String::new()
                },
                signal: None,
            })
        })
    }
}

/// Records power actions instead of rebooting the test machine.
#[derive(Debug, Default)]
struct RecordingPower(Mutex<Vec<PowerAction>>);

impl PowerControl for RecordingPower {
    fn execute(&self, action: PowerAction) -> BoxFuture<'static, Result<(), AgentError>> {
        self.0.lock().expect("lock").push(action);
        Box::pin(async { Ok(()) })
    }
}

struct Harness {
    coordinator: Addr<Coordinator>,
    heartbeats: Arc<AtomicUsize>,
    api_stops: Arc<AtomicUsize>,
    runner: Arc<FakeRunner>,
    power: Arc<RecordingPower>,
    dir: tempfile::TempDir,
}

fn start(standalone: bool) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = AgentConfig {
        standalone,
        paths: HostPaths::rooted_at(dir.path()),
        // No real disk may ever be offered to a step in these tests.
        block_device_allowlist: vec!["/dev/ironic-agent-test-no-such-disk".into()],
        ..AgentConfig::default()
    };
    let runner = Arc::new(FakeRunner::default());
    let peers = Peers {
        inspector: HardwareInspector::new(config.clone()).start(),
        installer: InstallerRunner::new(config.clone(), runner.clone()).start(),
        // A bus that does not exist: unit steps must fail clearly, not hang.
        systemd: SystemdSupervisor::new(Some(
            "unix:path=/nonexistent/ironic-agent-test-bus".into(),
        ))
        .start(),
        ironic: IronicClient::new(config.clone()).start(),
    };
    let managers: Vec<Arc<dyn HardwareManager>> = vec![
        Arc::new(GenericHardwareManager::default()),
        Arc::new(CoreOSInstallHardwareManager),
        Arc::new(TestingHardwareManager),
    ];
    let heartbeats = Arc::new(AtomicUsize::new(0));
    let api_stops = Arc::new(AtomicUsize::new(0));
    let power = Arc::new(RecordingPower::default());
    let recorder = HeartbeatRecorder(heartbeats.clone()).start();
    let coordinator = Coordinator::new(config, peers)
        .with_managers(ManagerSet::new(managers).expect("managers"))
        .with_runner(runner.clone())
        .with_power(power.clone())
        .with_heartbeat(recorder.recipient())
        .start();
    let api = ApiRecorder(api_stops.clone()).start();
    coordinator.do_send(AttachApiControl(api.recipient()));
    Harness {
        coordinator,
        heartbeats,
        api_stops,
        runner,
        power,
        dir,
    }
}

fn params(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("params must be an object, got {other}"),
    }
}

async fn run(h: &Harness, name: &str, p: Value, wait: bool) -> Result<CommandResult, AgentError> {
    h.coordinator
        .send(RunCommand {
            name: name.to_string(),
            params: params(p),
            wait,
        })
        .await
        .expect("coordinator mailbox")
}

fn node() -> Value {
    json!({"uuid": "2865dde3-5ab8-44f2-89b9-ac1d6436aebc", "driver_info": {"ipmi_password": "secret"},
           "instance_info": {}, "automated_clean": null})
}

fn step_params(kind: &str, step: &str, args: Value) -> Value {
    json!({"step": {"step": step, "interface": "deploy", "priority": 0, "args": args},
           "node": node(), "ports": [], format!("{kind}_version"): null})
}

async fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[actix_rt::test]
async fn sync_commands_succeed_with_short_names_and_fail_with_dotted_names() {
    let h = start(false);
    let ok = run(&h, "standby.sync", json!({}), false).await.expect("ok");
    assert_eq!(ok.command_name, "sync");
    assert_eq!(ok.command_status, CommandStatus::Succeeded);
    assert_eq!(ok.command_result, Some(Value::Null));
    assert_eq!(h.runner.calls(), vec![vec!["sync".to_string()]]);

    h.runner.fail("sync");
    let failed = run(&h, "standby.sync", json!({}), true)
        .await
        .expect("a stored result");
    assert_eq!(failed.command_name, "standby.sync");
    assert_eq!(failed.command_status, CommandStatus::Failed);
    let error = failed.command_error.expect("error");
    assert_eq!(error.error_type, "CommandExecutionError");
    assert!(error
        .details
        .starts_with("Flushing file system buffers failed"));

    // Unknown keyword for a sync command: a FAILED result, never a 500.
    let bad = run(
        &h,
        "clean.get_clean_steps",
        json!({"node": {}, "ports": [], "x": 1}),
        false,
    )
    .await
    .expect("stored");
    assert_eq!(bad.command_name, "clean.get_clean_steps");
    assert!(bad
        .command_error
        .expect("error")
        .details
        .contains("unexpected keyword argument 'x'"));

    let uuids = run(&h, "standby.get_partition_uuids", json!({}), false)
        .await
        .expect("ok");
    assert_eq!(uuids.command_result, Some(json!({})));

    let list = h.coordinator.send(ListCommands).await.expect("list");
    assert_eq!(list.len(), 4);
    // Sync commands never force a heartbeat.
    assert_eq!(h.heartbeats.load(Ordering::SeqCst), 0);
}

#[actix_rt::test]
async fn request_errors_are_http_errors() {
    let h = start(false);
    let no_dot = run(&h, "sync", json!({}), false).await.expect_err("400");
    assert_eq!(no_dot.code, 400);
    let unknown_ext = run(&h, "nope.sync", json!({}), false)
        .await
        .expect_err("404");
    assert_eq!(
        unknown_ext.faultstring(),
        "Not found: Extension with id nope not found."
    );
    let unknown_cmd = run(&h, "standby.nope", json!({}), false)
        .await
        .expect_err("400");
    assert_eq!(
        unknown_cmd.faultstring(),
        "Invalid command: Unknown command: nope"
    );
    let bad_image = run(
        &h,
        "standby.prepare_image",
        json!({"image_info": {"id": "x"}}),
        false,
    )
    .await
    .expect_err("400");
    assert_eq!(bad_image.error_type, "InvalidCommandParamsError");
    let not_standalone = run(&h, "poll.set_node_info", json!({"node_info": {}}), false)
        .await
        .expect_err("400");
    assert!(not_standalone.details.contains("standalone"));
    // None of those were stored.
    assert!(h
        .coordinator
        .send(ListCommands)
        .await
        .expect("list")
        .is_empty());
}

#[actix_rt::test]
async fn async_step_runs_in_background_busy_then_heartbeat() {
    let h = start(false);
    let running = run(
        &h,
        "clean.execute_clean_step",
        step_params("clean", "test_sleep", json!({"seconds": 0.4})),
        false,
    )
    .await
    .expect("accepted");
    assert_eq!(running.command_name, "execute_clean_step");
    assert_eq!(running.command_status, CommandStatus::Running);

    // Any command while it runs is 409, sync ones included.
    let busy = run(&h, "standby.sync", json!({}), false)
        .await
        .expect_err("busy");
    assert_eq!(busy.code, 409);
    assert!(busy.faultstring().contains("Agent is busy"));
    assert!(busy.details.contains("execute_clean_step"));

    // The mailbox is free while the command runs and while someone waits on it.
    let waiter = h.coordinator.send(GetCommand {
        id: running.id.clone(),
        wait: true,
    });
    let started = Instant::now();
    let list = h.coordinator.send(ListCommands).await.expect("list");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert_eq!(
        list.last().map(|r| r.command_status),
        Some(CommandStatus::Running)
    );
    assert_eq!(h.heartbeats.load(Ordering::SeqCst), 0);

    let done = waiter.await.expect("mailbox").expect("found");
    assert_eq!(done.command_status, CommandStatus::Succeeded);
    assert_eq!(done.command_name, "execute_clean_step");
    let result = done.command_result.expect("result");
    assert_eq!(result["clean_result"], "slept 0.4 seconds");
    assert_eq!(result["clean_step"]["step"], "test_sleep");
    wait_until("forced heartbeat", || {
        h.heartbeats.load(Ordering::SeqCst) == 1
    })
    .await;

    // Not busy any more.
    assert!(run(&h, "standby.sync", json!({}), false).await.is_ok());
    let missing = h
        .coordinator
        .send(GetCommand {
            id: "nope".into(),
            wait: false,
        })
        .await
        .expect("mailbox")
        .expect_err("404");
    assert_eq!(missing.code, 404);
}

#[actix_rt::test]
async fn wait_true_blocks_until_the_end_and_failures_are_wrapped() {
    let h = start(false);
    let failed = run(
        &h,
        "deploy.execute_deploy_step",
        step_params("deploy", "test_fail", json!({"message": "asked to fail"})),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(failed.command_name, "execute_deploy_step");
    assert_eq!(failed.command_status, CommandStatus::Failed);
    let error = failed.command_error.expect("error");
    assert_eq!(error.error_type, "DeploymentError");
    assert_eq!(error.message, "Deploy step failed");
    assert_eq!(
        error.details,
        "Unexpected exception performing deploy step test_fail. RuntimeError: asked to fail"
    );
    wait_until("forced heartbeat", || {
        h.heartbeats.load(Ordering::SeqCst) == 1
    })
    .await;

    // Steps whose real work belongs to later issues fail clearly.
    for (kind, step, args) in [
        ("clean", "burnin_cpu", json!({})),
        ("service", "burnin_memory", json!({})),
    ] {
        let result = run(
            &h,
            &format!("{kind}.execute_{kind}_step"),
            step_params(kind, step, args),
            true,
        )
        .await
        .expect("stored");
        assert_eq!(result.command_status, CommandStatus::Failed, "{step}");
        let details = result.command_error.expect("error").details;
        assert!(
            details.ends_with(&format!("{step} is not implemented in this agent yet")),
            "{details}"
        );
    }

    // install_coreos first picks the install device: with no disk allowed
    // (the test's allow-list), that fails clearly before anything runs.
    let coreos = run(
        &h,
        "deploy.execute_deploy_step",
        step_params("deploy", "install_coreos", json!({})),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(coreos.command_status, CommandStatus::Failed);
    let error = coreos.command_error.expect("error");
    assert_eq!(error.error_type, "DeviceNotFound", "{error:?}");

    // apply_configuration validates the RAID config before touching anything.
    let apply = run(
        &h,
        "service.execute_service_step",
        step_params("service", "apply_configuration", json!({"raid_config": {}})),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(apply.command_status, CommandStatus::Failed);
    assert_eq!(
        apply.command_error.expect("error").error_type,
        "SoftwareRAIDError"
    );

    // With no reachable system bus, start_assisted_install fails clearly.
    let assisted = run(
        &h,
        "deploy.execute_deploy_step",
        step_params("deploy", "start_assisted_install", json!({})),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(assisted.command_status, CommandStatus::Failed);
    let error = assisted.command_error.expect("error");
    assert_eq!(error.error_type, "DeploymentError");
    assert!(
        error.details.contains("/nonexistent/ironic-agent-test-bus"),
        "{}",
        error.details
    );

    // Argument validation happens before delegation.
    let missing = run(
        &h,
        "service.execute_service_step",
        step_params("service", "apply_configuration", json!({})),
        true,
    )
    .await
    .expect("stored");
    assert!(missing
        .command_error
        .expect("error")
        .details
        .contains("TypeError: apply_configuration() missing 1 required argument: 'raid_config'"));

    // A step no manager has.
    let unknown = run(
        &h,
        "clean.execute_clean_step",
        step_params("clean", "no_such_step", json!({})),
        true,
    )
    .await
    .expect("stored");
    let error = unknown.command_error.expect("error");
    assert_eq!(error.error_type, "HardwareManagerMethodNotFound");
    assert_eq!(error.details, "Could not find method: no_such_step");

    // A malformed step.
    let malformed = run(
        &h,
        "clean.execute_clean_step",
        json!({"step": {"priority": 1}, "node": node(), "ports": []}),
        true,
    )
    .await
    .expect("stored");
    let error = malformed.command_error.expect("error");
    assert_eq!(error.error_type, "CommandExecutionError");
    assert!(error
        .details
        .starts_with("Malformed clean_step, no \"step\" key"));
}

#[actix_rt::test]
async fn version_mismatch_for_every_kind() {
    let h = start(false);
    for kind in ["clean", "deploy", "service"] {
        let mut p = step_params(kind, "test_sleep", json!({"seconds": 0}));
        p[format!("{kind}_version")] = json!({"generic_hardware_manager": "1.1"});
        let result = run(&h, &format!("{kind}.execute_{kind}_step"), p, true)
            .await
            .expect("stored");
        assert_eq!(
            result.command_status,
            CommandStatus::CleanVersionMismatch,
            "{kind}"
        );
        assert_eq!(result.command_name, format!("execute_{kind}_step"));
        assert!(result.command_result.is_none());
        assert_eq!(
            result.command_error.expect("error").error_type,
            "VersionMismatch"
        );
    }
    // The exact current map passes.
    let versions = json!({"generic_hardware_manager": "1.2", "CoreOSInstallHardwareManager": "1",
                          "testing_hardware_manager": "1.0"});
    let mut p = step_params("deploy", "test_sleep", json!({"seconds": 0}));
    p["deploy_version"] = versions;
    let ok = run(&h, "deploy.execute_deploy_step", p, true)
        .await
        .expect("stored");
    assert_eq!(ok.command_status, CommandStatus::Succeeded);
}

/// The structure of a step list: `{class: {step name: sorted keys}}`.
fn shape(steps: &Value) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for (class, list) in steps.as_object().expect("steps object") {
        for step in list.as_array().expect("list") {
            let mut keys: Vec<String> = step.as_object().expect("step").keys().cloned().collect();
            keys.sort();
            out.push((
                format!("{class}/{}", step["step"].as_str().expect("name")),
                keys,
            ));
        }
    }
    out
}

#[actix_rt::test]
async fn get_steps_match_the_captured_ipa_bodies() {
    let h = start(false);
    let captured: Value =
        serde_json::from_str(include_str!("fixtures/ipa-get-clean-steps.json")).expect("fixture");
    let ours = run(
        &h,
        "clean.get_clean_steps",
        json!({"node": node(), "ports": []}),
        true,
    )
    .await
    .expect("ok");
    assert_eq!(ours.command_name, captured["command_name"]);
    assert_eq!(ours.command_status, CommandStatus::Succeeded);
    let ours = ours.command_result.expect("result");
    let theirs = &captured["command_result"];
    let keys = |v: &Value| {
        v.as_object()
            .map(|m| m.keys().cloned().collect::<BTreeSet<_>>())
    };
    assert_eq!(keys(&ours), keys(theirs));
    // Every step IPA's generic manager kept in the capture is identical here.
    for step in theirs["clean_steps"]["GenericHardwareManager"]
        .as_array()
        .expect("list")
    {
        let mine = ours["clean_steps"]["GenericHardwareManager"]
            .as_array()
            .and_then(|list| list.iter().find(|s| s["step"] == step["step"]))
            .unwrap_or_else(|| panic!("missing {}", step["step"]));
        assert_eq!(mine, step);
    }
    assert_eq!(
        ours["hardware_manager_version"]["generic_hardware_manager"],
        theirs["hardware_manager_version"]["generic_hardware_manager"]
    );
    // Same key shapes as IPA for clean steps (abortable, no argsinfo unless args).
    for (name, step_keys) in shape(&ours["clean_steps"]) {
        if !name.contains("clean_uefi_nvram") && !name.starts_with("TestingHardwareManager") {
            assert_eq!(
                step_keys,
                [
                    "abortable",
                    "interface",
                    "priority",
                    "reboot_requested",
                    "step"
                ],
                "{name}"
            );
        }
    }

    let captured: Value =
        serde_json::from_str(include_str!("fixtures/ipa-get-deploy-steps.json")).expect("fixture");
    let ours = run(
        &h,
        "deploy.get_deploy_steps",
        json!({"node": node(), "ports": []}),
        true,
    )
    .await
    .expect("ok")
    .command_result
    .expect("result");
    let theirs = &captured["command_result"];
    for step in theirs["deploy_steps"]["GenericHardwareManager"]
        .as_array()
        .expect("list")
    {
        let mine = ours["deploy_steps"]["GenericHardwareManager"]
            .as_array()
            .and_then(|list| list.iter().find(|s| s["step"] == step["step"]))
            .unwrap_or_else(|| panic!("missing {}", step["step"]));
        assert_eq!(mine, step);
    }
    let coreos: Vec<_> = ours["deploy_steps"]["CoreOSInstallHardwareManager"]
        .as_array()
        .expect("coreos steps")
        .iter()
        .map(|s| s["step"].clone())
        .collect();
    assert_eq!(
        coreos,
        [json!("install_coreos"), json!("start_assisted_install")]
    );

    // get_*_steps cached the node.
    let cached = h.coordinator.send(GetCachedNode).await.expect("mailbox");
    assert_eq!(cached, Some(node()));
}

#[actix_rt::test]
async fn drain_waits_for_the_running_command_then_refuses_new_ones() {
    let h = start(false);
    run(
        &h,
        "service.execute_service_step",
        step_params("service", "test_sleep", json!({"seconds": 0.3})),
        false,
    )
    .await
    .expect("accepted");
    let started = Instant::now();
    let drained = h
        .coordinator
        .send(DrainCommands {
            timeout: Duration::from_secs(5),
        })
        .await
        .expect("mailbox");
    assert!(drained);
    assert!(started.elapsed() >= Duration::from_millis(250), "it waited");
    let list = h.coordinator.send(ListCommands).await.expect("list");
    assert_eq!(list[0].command_status, CommandStatus::Succeeded);
    let refused = run(&h, "standby.sync", json!({}), false)
        .await
        .expect_err("draining");
    assert_eq!(refused.code, 503);
}

#[actix_rt::test]
async fn drain_gives_up_after_its_timeout() {
    let h = start(false);
    run(
        &h,
        "clean.execute_clean_step",
        step_params("clean", "test_sleep", json!({"seconds": 5})),
        false,
    )
    .await
    .expect("accepted");
    let drained = h
        .coordinator
        .send(DrainCommands {
            timeout: Duration::from_millis(100),
        })
        .await
        .expect("mailbox");
    assert!(!drained);
}

#[actix_rt::test]
async fn flow_runs_nested_commands_and_validates() {
    let h = start(false);
    let ok = run(
        &h,
        "flow.start_flow",
        json!({"flow": [{"standby.sync": {}}, {"standby.power_off": {}}]}),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(ok.command_name, "start_flow");
    assert_eq!(ok.command_status, CommandStatus::Succeeded);
    assert_eq!(
        *h.power.0.lock().expect("lock"),
        vec![PowerAction::PowerOff]
    );
    // Nested results are not stored.
    assert_eq!(
        h.coordinator.send(ListCommands).await.expect("list").len(),
        1
    );

    let missing_ext = run(
        &h,
        "flow.start_flow",
        json!({"flow": [{"nope.x": {}}]}),
        false,
    )
    .await
    .expect("stored FAILED");
    assert_eq!(missing_ext.command_name, "flow.start_flow");
    assert_eq!(missing_ext.command_status, CommandStatus::Failed);
    let error = missing_ext.command_error.expect("error");
    assert_eq!(error.error_type, "RequestedObjectNotFoundError");
    assert_eq!(error.code, 404);

    let missing_method = run(
        &h,
        "flow.start_flow",
        json!({"flow": [{"standby.x": {}}]}),
        false,
    )
    .await
    .expect_err("400");
    assert_eq!(
        missing_method.faultstring(),
        "Invalid command parameters: Extension standby doesn't provide x method"
    );

    h.runner.fail("sync");
    let nested_failure = run(
        &h,
        "flow.start_flow",
        json!({"flow": [{"standby.sync": {}}, {"standby.run_image": {}}]}),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(nested_failure.command_status, CommandStatus::Failed);
    assert_eq!(
        nested_failure.command_error.expect("error").details,
        "standby.sync was failed"
    );
    // The flow stopped before run_image.
    assert_eq!(h.power.0.lock().expect("lock").len(), 1);
}

#[actix_rt::test]
async fn power_commands_use_the_power_control() {
    let h = start(false);
    let reboot = run(&h, "standby.run_image", json!({}), true)
        .await
        .expect("stored");
    assert_eq!(reboot.command_name, "run_image");
    assert_eq!(reboot.command_status, CommandStatus::Succeeded);
    assert_eq!(reboot.command_result, Some(Value::Null));
    let off = run(&h, "standby.power_off", json!({}), true)
        .await
        .expect("stored");
    assert_eq!(off.command_status, CommandStatus::Succeeded);
    assert_eq!(
        *h.power.0.lock().expect("lock"),
        vec![PowerAction::Reboot, PowerAction::PowerOff]
    );
    // Buffers are flushed before each power action.
    let syncs = h
        .runner
        .calls()
        .iter()
        .filter(|argv| argv[0] == "sync")
        .count();
    assert_eq!(syncs, 2);
    wait_until("two heartbeats", || {
        h.heartbeats.load(Ordering::SeqCst) == 2
    })
    .await;
}

#[actix_rt::test]
async fn rescue_writes_the_password_and_stops_the_api() {
    let h = start(false);
    let result = run(
        &h,
        "rescue.finalize_rescue",
        json!({"rescue_password": "hunter2", "hashed": false}),
        false,
    )
    .await
    .expect("stored");
    assert_eq!(result.command_name, "finalize_rescue");
    assert_eq!(result.command_status, CommandStatus::Succeeded);
    let stored = std::fs::read_to_string(
        h.dir
            .path()
            .join("etc/ipa-rescue-config/ipa-rescue-password"),
    )
    .expect("password file");
    assert!(stored.starts_with("$5$"));
    assert!(!stored.contains("hunter2"));
    assert!(h.dir.path().join("etc/.rescued").exists());
    wait_until("API stop", || h.api_stops.load(Ordering::SeqCst) == 1).await;
}

#[actix_rt::test]
async fn lockdown_stops_the_api_and_takes_the_links_down() {
    let h = start(false);
    for iface in ["eth0", "lo", "bond0"] {
        std::fs::create_dir_all(h.dir.path().join("sys/class/net").join(iface)).expect("mkdir");
    }
    let result = run(&h, "system.lockdown", json!({}), false)
        .await
        .expect("stored");
    assert_eq!(result.command_name, "lockdown");
    assert_eq!(result.command_status, CommandStatus::Succeeded);
    wait_until("API stop", || h.api_stops.load(Ordering::SeqCst) == 1).await;
    let link_calls = || {
        h.runner
            .calls()
            .into_iter()
            .filter(|argv| argv.first().is_some_and(|p| p == "ip"))
            .collect::<Vec<_>>()
    };
    wait_until("links down", || link_calls().len() == 2).await;
    assert_eq!(
        link_calls(),
        vec![
            vec!["ip", "link", "set", "bond0", "down"],
            vec!["ip", "link", "set", "eth0", "down"]
        ]
    );
}

#[actix_rt::test]
async fn logs_inventory_and_node_info() {
    let h = start(true);
    let logs = run(&h, "log.collect_system_logs", json!({}), true)
        .await
        .expect("stored");
    assert_eq!(logs.command_name, "collect_system_logs");
    let archive = logs.command_result.expect("result")["system_logs"]
        .as_str()
        .expect("base64 string")
        .to_string();
    assert!(archive.len() > 40);
    assert!(h
        .runner
        .calls()
        .iter()
        .any(|argv| argv.first().is_some_and(|p| p == "dmesg")));

    // With the inspector merged, the (fixture-rooted, empty) inventory comes back.
    let inventory = run(&h, "poll.get_hardware_info", json!({}), true)
        .await
        .expect("stored");
    assert_eq!(inventory.command_name, "get_hardware_info");
    assert_eq!(inventory.command_status, CommandStatus::Succeeded);

    // Standalone: set_node_info caches the node.
    let set = run(
        &h,
        "poll.set_node_info",
        json!({"node_info": {"node": node(), "config": {}}}),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(set.command_status, CommandStatus::Succeeded);
    assert_eq!(
        h.coordinator.send(GetCachedNode).await.expect("mailbox"),
        Some(node())
    );
    h.coordinator
        .send(CacheNode {
            node: json!({"uuid": "other"}),
        })
        .await
        .expect("mailbox");
    assert_eq!(
        h.coordinator.send(GetCachedNode).await.expect("mailbox"),
        Some(json!({"uuid": "other"}))
    );
}

#[actix_rt::test]
async fn async_commands_that_are_not_implemented_fail_clearly() {
    let h = start(false);
    // prepare_image is implemented (tests/generic_steps.rs); an unusable checksum is a 400.
    let image_info = json!({"id": "img", "urls": ["http://x/img"], "checksum": "abc"});
    let prepare = run(
        &h,
        "standby.prepare_image",
        json!({"image_info": image_info}),
        true,
    )
    .await
    .expect_err("400");
    assert_eq!(prepare.code, 400, "{prepare:?}");
    assert_eq!(prepare.error_type, "InvalidCommandParamsError");
    let bootloader = run(
        &h,
        "image.install_bootloader",
        json!({"root_uuid": "abc"}),
        true,
    )
    .await
    .expect("stored");
    assert_eq!(bootloader.command_name, "install_bootloader");
    assert_eq!(bootloader.command_status, CommandStatus::Failed);
    let missing = run(&h, "standby.execute_bootc_install", json!({}), true)
        .await
        .expect("stored");
    assert!(missing
        .command_error
        .expect("error")
        .details
        .contains("missing 1 required positional argument: 'image_source'"));
}
