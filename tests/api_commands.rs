//! The command routes of the BUILT binary with the command engine behind them: IPA's
//! functional test (spec §12.2), the busy rule (409), `wait=true`, result naming and
//! wrapping, failures and version mismatch (§2.5–§2.7, §14 items 1–3 and 8).
//!
//! Long-running and failing steps come from the engine's test-only hardware manager,
//! enabled by `IRONIC_AGENT_ENABLE_TEST_MANAGER=1`: `test_sleep` (arg `seconds`) and
//! `test_fail` (arg `message`), priority 0, interface `deploy`, for clean, deploy and
//! service steps.

mod support;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::agent::{post_json, send, AgentOptions, AgentProcess, Reply};

fn test_agent() -> AgentProcess {
    AgentProcess::start_with(AgentOptions::default().env("IRONIC_AGENT_ENABLE_TEST_MANAGER", "1"))
}

fn node() -> Value {
    json!({"uuid": "1", "properties": {}, "instance_info": {}, "driver_internal_info": {}})
}

/// `<kind>.execute_<kind>_step` running the test manager's `step` with `args`; `extra`
/// keys are added to the params (e.g. `clean_version`).
fn step_command(kind: &str, step: &str, args: Value, extra: Value) -> Value {
    let mut params = json!({
        "step": {"step": step, "interface": "deploy", "args": args, "priority": 0},
        "node": node(),
        "ports": [],
    });
    if let (Some(params), Value::Object(extra)) = (params.as_object_mut(), extra) {
        params.extend(extra);
    }
    json!({"name": format!("{kind}.execute_{kind}_step"), "params": params})
}

fn run(agent: &AgentProcess, query: &str, body: &Value) -> Reply {
    post_json(
        &agent.client(),
        &agent.url_with_token(&format!("/v1/commands/{query}")),
        body,
    )
}

fn get_command(agent: &AgentProcess, id: &str, query: &str) -> Reply {
    send(
        agent
            .client()
            .get(&agent.url_with_token(&format!("/v1/commands/{id}{query}"))),
        None,
    )
}

fn list(agent: &AgentProcess) -> Vec<Value> {
    let reply = send(
        agent.client().get(&agent.url_with_token("/v1/commands/")),
        None,
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    let body = reply.json();
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{body}");
    body["commands"].as_array().cloned().expect("a list")
}

/// Asserts a 200 command result with exactly IPA's five keys (`command_params` is not
/// serialized; an optional `command_progress` is allowed).
fn result_of(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{reply:?}");
    let result = reply.json();
    for key in [
        "id",
        "command_name",
        "command_status",
        "command_error",
        "command_result",
    ] {
        assert!(result.get(key).is_some(), "{key} missing: {result}");
    }
    assert!(result.get("command_params").is_none(), "{result}");
    result
}

#[test]
fn ipa_functional_test_commands() {
    let agent = AgentProcess::start();
    let requests = agent.following_client();
    // Step 0.
    assert_eq!(
        send(requests.get(&agent.url("/v1/commands")), None).status,
        401
    );
    // Step 1.
    let reply = send(requests.get(&agent.url_with_token("/v1/commands")), None);
    assert_eq!(reply.json(), json!({"commands": []}));
    // Step 2: note `ports` is an object here.
    let reply = run(
        &agent,
        "",
        &json!({"name": "clean.get_clean_steps", "params": {
            "node": {"uuid": "1", "properties": {}, "instance_info": {}},
            "ports": {},
        }}),
    );
    assert!((200..300).contains(&reply.status), "{reply:?}");
    let result = result_of(&reply);
    assert_eq!(result["command_error"], Value::Null, "{result}");
    assert_eq!(result["command_status"], "SUCCEEDED");
    assert!(
        result["command_result"]["clean_steps"].is_object(),
        "{result}"
    );
    assert!(
        result["command_result"]["hardware_manager_version"]["generic_hardware_manager"]
            .is_string(),
        "{result}"
    );
    // Step 3.
    let reply = send(requests.get(&agent.url_with_token("/v1/commands")), None);
    let commands = reply.json()["commands"].as_array().cloned().expect("list");
    assert_eq!(commands.len(), 1, "{commands:?}");
    assert_eq!(commands[0]["command_name"], "get_clean_steps");
    // Step 4.
    let id = commands[0]["id"].as_str().expect("id").to_string();
    let reply = get_command(&agent, &id, "");
    assert_eq!(result_of(&reply)["command_name"], "get_clean_steps");
    assert_eq!(reply.json(), commands[0]);
    // Also through the alias.
    let reply = send(
        agent
            .client()
            .get(&agent.url_with_token(&format!("/commands/{id}"))),
        None,
    );
    assert_eq!(reply.json(), commands[0]);
    // Step 5.
    let reply = run(
        &agent,
        "",
        &json!({"name": "bad_extension.fake_command", "params": {}}),
    );
    assert_eq!(reply.status, 404, "{reply:?}");
}

#[test]
fn a_running_command_makes_the_agent_busy_and_wait_blocks_until_it_ends() {
    let agent = test_agent();
    // Long enough for the checks below to run inside it on a loaded machine.
    let started = Instant::now();
    let reply = run(
        &agent,
        "?wait=false",
        &step_command("clean", "test_sleep", json!({"seconds": 8}), json!({})),
    );
    let running = result_of(&reply);
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "wait=false blocked"
    );
    assert_eq!(running["command_status"], "RUNNING", "{running}");
    assert_eq!(running["command_name"], "execute_clean_step");
    assert_eq!(running["command_error"], Value::Null);
    assert_eq!(running["command_result"], Value::Null);
    let id = running["id"].as_str().expect("id").to_string();

    // Any command, sync or unknown, is refused while it runs.
    for body in [
        json!({"name": "clean.get_clean_steps", "params": {"node": node(), "ports": []}}),
        json!({"name": "standby.get_partition_uuids", "params": {}}),
        json!({"name": "bad_extension.fake_command", "params": {}}),
        step_command("deploy", "test_sleep", json!({"seconds": 0}), json!({})),
    ] {
        let reply = run(&agent, "", &body);
        assert_eq!(reply.status, 409, "{body}: {reply:?}");
        let fault = reply.json();
        assert_eq!(fault["faultcode"], "Client");
        let text = fault["faultstring"].as_str().unwrap_or_default();
        assert!(
            text.starts_with("Agent is busy") && text.contains("execute_clean_step"),
            "{fault}"
        );
    }
    // Reading is allowed while busy.
    assert_eq!(
        result_of(&get_command(&agent, &id, ""))["command_status"],
        "RUNNING"
    );
    assert_eq!(list(&agent).len(), 1);

    // wait=true (any case) on the result blocks until the step ends.
    let reply = get_command(&agent, &id, "?wait=True");
    let done = result_of(&reply);
    assert!(
        started.elapsed() >= Duration::from_millis(7900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(done["command_status"], "SUCCEEDED", "{done}");
    assert_eq!(done["command_name"], "execute_clean_step");
    assert_eq!(done["id"], running["id"]);
    // An async step's result is IPA's {clean_result, clean_step} object.
    assert_eq!(done["command_result"]["clean_step"]["step"], "test_sleep");
    assert!(
        done["command_result"].get("clean_result").is_some(),
        "{done}"
    );

    // Not busy any more.
    let reply = run(
        &agent,
        "",
        &json!({"name": "standby.get_partition_uuids", "params": {}}),
    );
    let result = result_of(&reply);
    assert_eq!(result["command_status"], "SUCCEEDED");
    assert_eq!(result["command_name"], "get_partition_uuids");
    let names: Vec<Value> = list(&agent)
        .iter()
        .map(|c| c["command_name"].clone())
        .collect();
    assert_eq!(
        names,
        [json!("execute_clean_step"), json!("get_partition_uuids")]
    );
}

#[test]
fn post_with_wait_true_blocks_and_other_values_do_not() {
    let agent = test_agent();
    for (kind, wait) in [("deploy", "true"), ("service", "TRUE"), ("clean", "tRuE")] {
        let started = Instant::now();
        let reply = run(
            &agent,
            &format!("?wait={wait}"),
            &step_command(kind, "test_sleep", json!({"seconds": 1.5}), json!({})),
        );
        let result = result_of(&reply);
        assert!(
            started.elapsed() >= Duration::from_millis(1400),
            "wait={wait} did not block"
        );
        assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
        assert_eq!(result["command_name"], format!("execute_{kind}_step"));
        assert_eq!(
            result["command_result"][format!("{kind}_step")]["step"],
            "test_sleep"
        );
    }
    for wait in ["1", "yes", "false", ""] {
        let reply = run(
            &agent,
            &format!("?wait={wait}"),
            &step_command("clean", "test_sleep", json!({"seconds": 1}), json!({})),
        );
        let result = result_of(&reply);
        assert_eq!(result["command_status"], "RUNNING", "wait={wait}: {result}");
        let id = result["id"].as_str().expect("id").to_string();
        let done = result_of(&get_command(&agent, &id, "?wait=true"));
        assert_eq!(done["command_status"], "SUCCEEDED");
    }
}

#[test]
fn failed_commands_are_http_200_with_ipa_error_objects() {
    let agent = test_agent();
    for (kind, error_type, message) in [
        ("clean", "CleaningError", "Clean step failed"),
        ("deploy", "DeploymentError", "Deploy step failed"),
        ("service", "ServicingError", "Service step failed"),
    ] {
        let reply = run(
            &agent,
            "?wait=true",
            &step_command(kind, "test_fail", json!({"message": "boom-42"}), json!({})),
        );
        let result = result_of(&reply);
        assert_eq!(result["command_status"], "FAILED", "{result}");
        // Async commands keep the short name whatever the outcome.
        assert_eq!(result["command_name"], format!("execute_{kind}_step"));
        assert_eq!(result["command_result"], Value::Null);
        let error = &result["command_error"];
        assert_eq!(error["type"], error_type, "{error}");
        assert_eq!(error["code"], 500);
        assert_eq!(error["message"], message);
        assert!(
            error["details"]
                .as_str()
                .is_some_and(|d| d.contains("boom-42")),
            "{error}"
        );
    }
    // A sync command that raised is stored under its dotted name, and is HTTP 200.
    let reply = run(
        &agent,
        "",
        &json!({"name": "clean.get_clean_steps", "params": {}}),
    );
    let result = result_of(&reply);
    assert_eq!(result["command_status"], "FAILED", "{result}");
    assert_eq!(result["command_name"], "clean.get_clean_steps");
    assert_eq!(result["command_error"]["code"], 500);
    assert!(result["command_error"]["details"].is_string());
    // The list still answers 200 afterwards (IPA's 500 bug is not copied).
    assert_eq!(list(&agent).len(), 4);
    // Known extension, unknown command.
    let reply = run(&agent, "", &json!({"name": "clean.nope", "params": {}}));
    reply.assert_fault(400, "Invalid command: Unknown command: nope");
}

#[test]
fn version_mismatch_uses_the_clean_literal_for_every_step_kind() {
    let agent = test_agent();
    // The versions the agent reports are accepted.
    let reply = run(
        &agent,
        "",
        &json!({"name": "clean.get_clean_steps", "params": {"node": node(), "ports": []}}),
    );
    let versions = result_of(&reply)["command_result"]["hardware_manager_version"].clone();
    assert!(versions.is_object(), "{versions}");
    let reply = run(
        &agent,
        "?wait=true",
        &step_command(
            "clean",
            "test_sleep",
            json!({"seconds": 0}),
            json!({"clean_version": versions}),
        ),
    );
    assert_eq!(result_of(&reply)["command_status"], "SUCCEEDED");

    for kind in ["clean", "deploy", "service"] {
        let reply = run(
            &agent,
            "?wait=true",
            &step_command(
                kind,
                "test_sleep",
                json!({"seconds": 0}),
                json!({ format!("{kind}_version"): {"generic_hardware_manager": "0.0"} }),
            ),
        );
        let result = result_of(&reply);
        assert_eq!(
            result["command_status"], "CLEAN_VERSION_MISMATCH",
            "{result}"
        );
        assert_eq!(result["command_name"], format!("execute_{kind}_step"));
        assert_eq!(result["command_result"], Value::Null);
        let error = &result["command_error"];
        assert_eq!(error["type"], "VersionMismatch", "{error}");
        assert_eq!(error["code"], 409);
        assert_eq!(
            error["message"],
            "Hardware managers version mismatch, reload agent with correct version"
        );
        let details = error["details"].as_str().unwrap_or_default();
        assert!(
            details.starts_with("Current versions: ") && details.contains("0.0"),
            "{error}"
        );
    }
}

#[test]
fn validator_rejections_are_400_and_wait_is_harmless_for_sync_commands() {
    let agent = AgentProcess::start();
    // §2.6: a synchronous validator rejecting the params is an HTTP 400, not a result.
    let reply = run(
        &agent,
        "",
        &json!({"name": "standby.prepare_image", "params": {"image_info": {"id": "x"}}}),
    );
    reply.assert_fault(
        400,
        "Invalid command parameters: Image is missing 'urls' field.",
    );
    assert!(list(&agent).is_empty(), "a rejected request is not stored");
    // wait=true on a sync command just answers.
    let reply = run(
        &agent,
        "?wait=true",
        &json!({"name": "deploy.get_deploy_steps", "params": {"node": node(), "ports": {}}}),
    );
    let result = result_of(&reply);
    assert_eq!(result["command_status"], "SUCCEEDED", "{result}");
    assert_eq!(result["command_name"], "get_deploy_steps");
    assert!(
        result["command_result"]["deploy_steps"].is_object(),
        "{result}"
    );
}
