//! Unit tests of the manager framework (no actor system).

use serde_json::json;

use super::*;

fn step(name: &str, priority: i64) -> StepInfo {
    StepInfo::new(name, priority, "deploy")
}

fn candidate(class: &str, support: HardwareSupport, steps: Vec<StepInfo>) -> Candidate {
    Candidate {
        class_name: class.to_string(),
        support,
        steps,
    }
}

fn winners(out: &[(String, Vec<StepInfo>)]) -> BTreeMap<String, (String, i64)> {
    out.iter()
        .flat_map(|(class, steps)| {
            steps
                .iter()
                .map(move |s| (s.step.clone(), (class.clone(), s.priority)))
        })
        .collect()
}

#[test]
fn dedup_prefers_support_then_priority_then_class_name() {
    let out = deduplicate_steps(vec![
        candidate(
            "ProviderManager",
            HardwareSupport::SERVICE_PROVIDER,
            vec![step("erase_devices", 0), step("provider_only", 5)],
        ),
        candidate(
            "ZetaManager",
            HardwareSupport::MAINLINE,
            vec![step("tie", 7), step("by_priority", 10)],
        ),
        candidate(
            "AlphaManager",
            HardwareSupport::MAINLINE,
            vec![step("tie", 7), step("by_priority", 20)],
        ),
        candidate(
            "GenericHardwareManager",
            HardwareSupport::GENERIC,
            vec![
                step("erase_devices", 99),
                step("generic_only", 1),
                step("tie", 50),
            ],
        ),
    ]);
    let won = winners(&out);
    // Higher support beats a higher priority.
    assert_eq!(won["erase_devices"], ("ProviderManager".into(), 0));
    // Same support: higher priority wins.
    assert_eq!(won["by_priority"], ("AlphaManager".into(), 20));
    // Same support and priority: alphabetical class name; lower support loses even at 50.
    assert_eq!(won["tie"], ("AlphaManager".into(), 7));
    assert_eq!(won["generic_only"], ("GenericHardwareManager".into(), 1));
    assert_eq!(won["provider_only"], ("ProviderManager".into(), 5));
    // Exactly one winner per name.
    let total: usize = out.iter().map(|(_, steps)| steps.len()).sum();
    assert_eq!(total, 5);
    // ZetaManager won nothing, so it has no key at all.
    assert!(out.iter().all(|(class, _)| class != "ZetaManager"));
}

#[derive(Debug)]
struct Fake {
    class: &'static str,
    name: Option<&'static str>,
    version: Option<&'static str>,
    support: HardwareSupport,
}

impl HardwareManager for Fake {
    fn class_name(&self) -> &'static str {
        self.class
    }
    fn manager_name(&self) -> &str {
        self.name.unwrap_or(self.class)
    }
    fn version(&self) -> &str {
        self.version.unwrap_or("1.0")
    }
    fn evaluate_hardware_support(&self) -> HardwareSupport {
        self.support
    }
    fn get_steps(&self, _kind: StepKind, _node: &Value, _ports: &Value) -> Vec<StepInfo> {
        vec![step("shared", 1)]
    }
    fn call(
        &self,
        _method: &str,
        _ctx: StepContext,
        _args: Map<String, Value>,
    ) -> Option<BoxFuture<'static, StepResult>> {
        None
    }
}

fn fake(
    class: &'static str,
    name: Option<&'static str>,
    version: Option<&'static str>,
    support: HardwareSupport,
) -> Arc<dyn HardwareManager> {
    Arc::new(Fake {
        class,
        name,
        version,
        support,
    })
}

#[test]
fn manager_set_sorts_drops_unsupported_and_keys_versions_by_name() {
    let set = ManagerSet::new(vec![
        fake(
            "Low",
            Some("low_manager"),
            Some("1.2"),
            HardwareSupport::GENERIC,
        ),
        fake("Gone", None, None, HardwareSupport::NONE),
        fake("High", None, Some("3"), HardwareSupport::SERVICE_PROVIDER),
        fake("Mid", None, None, HardwareSupport::MAINLINE),
    ])
    .expect("managers");
    let order: Vec<_> = set.summary().into_iter().map(|(class, _)| class).collect();
    assert_eq!(order, ["High", "Mid", "Low"]);
    assert_eq!(
        set.versions(),
        json!({"low_manager": "1.2", "High": "3", "Mid": "1.0"})
    );
    let steps = set.get_steps(StepKind::Clean, &json!({}), &json!([]));
    assert_eq!(steps["clean_steps"]["High"][0]["step"], "shared");
    assert!(steps["clean_steps"].get("Mid").is_none());
    assert_eq!(steps["hardware_manager_version"], set.versions());

    let none = ManagerSet::new(vec![fake("Gone", None, None, HardwareSupport::NONE)]);
    assert_eq!(
        none.expect_err("no managers").error_type,
        "HardwareManagerNotFound"
    );
}

#[test]
fn standard_steps_match_ipa_shapes() {
    let set = ManagerSet::standard(&AgentConfig::default());
    assert_eq!(
        set.versions(),
        json!({"generic_hardware_manager": "1.2", "CoreOSInstallHardwareManager": "1"})
    );
    let clean = set.get_steps(StepKind::Clean, &json!({}), &json!([]));
    let generic = clean["clean_steps"]["GenericHardwareManager"]
        .as_array()
        .expect("generic clean steps");
    let find = |name: &str| {
        generic
            .iter()
            .find(|s| s["step"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} missing"))
    };
    assert_eq!(
        find("erase_devices"),
        json!({"step": "erase_devices", "priority": 10, "interface": "deploy",
               "reboot_requested": false, "abortable": true})
    );
    assert_eq!(find("erase_devices_metadata")["priority"], 99);
    assert_eq!(find("delete_configuration")["interface"], "raid");
    assert!(find("clean_uefi_nvram")["argsinfo"]["match_patterns"]["required"] == false);
    assert_eq!(generic.len(), 12);
    assert!(clean["clean_steps"]
        .get("CoreOSInstallHardwareManager")
        .is_none());

    let deploy = set.get_steps(StepKind::Deploy, &json!({}), &json!([]));
    let coreos = &deploy["deploy_steps"]["CoreOSInstallHardwareManager"];
    assert_eq!(
        coreos,
        &json!([
            {"step": "install_coreos", "priority": 0, "interface": "deploy",
             "reboot_requested": false, "argsinfo": {}},
            {"step": "start_assisted_install", "priority": 0, "interface": "deploy",
             "reboot_requested": false, "argsinfo": {}}
        ])
    );
    let generic_deploy = deploy["deploy_steps"]["GenericHardwareManager"]
        .as_array()
        .expect("generic deploy steps");
    // Deploy steps carry no abortable key (as captured from IPA).
    assert!(generic_deploy.iter().all(|s| s.get("abortable").is_none()));
    let apply = generic_deploy
        .iter()
        .find(|s| s["step"] == "apply_configuration")
        .expect("apply_configuration");
    assert_eq!(apply["argsinfo"]["raid_config"]["required"], true);
    assert_eq!(apply["interface"], "raid");

    let service = set.get_steps(StepKind::Service, &json!({}), &json!([]));
    let names: Vec<_> = service["service_steps"]["GenericHardwareManager"]
        .as_array()
        .expect("service steps")
        .iter()
        .map(|s| s["step"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(names.contains(&"burnin_cpu".to_string()));
    assert!(
        !names.contains(&"burnin_disk".to_string()),
        "left out on purpose"
    );
}

#[test]
fn inject_files_priority_comes_from_config() {
    let config = AgentConfig {
        inject_files_priority: 42,
        ..AgentConfig::default()
    };
    let set = ManagerSet::standard(&config);
    let deploy = set.get_steps(StepKind::Deploy, &json!({}), &json!([]));
    let inject = deploy["deploy_steps"]["GenericHardwareManager"]
        .as_array()
        .and_then(|steps| steps.iter().find(|s| s["step"] == "inject_files"))
        .cloned()
        .expect("inject_files");
    assert_eq!(inject["priority"], 42);
}

#[test]
fn version_check_is_exact_dict_equality() {
    let current = json!({"generic_hardware_manager": "1.2", "CoreOSInstallHardwareManager": "1"});
    assert!(check_version(&current, None).is_ok());
    assert!(check_version(&current, Some(&Value::Null)).is_ok());
    assert!(check_version(&current, Some(&current.clone())).is_ok());
    let older = json!({"generic_hardware_manager": "1.1", "CoreOSInstallHardwareManager": "1"});
    let err = check_version(&current, Some(&older)).expect_err("mismatch");
    assert_eq!(err.error_type, "VersionMismatch");
    assert_eq!(err.code, 409);
    assert!(err.details.starts_with("Current versions: "));
    assert!(err.details.contains("versions used by ironic: "));
    let subset = json!({"generic_hardware_manager": "1.2"});
    assert!(check_version(&current, Some(&subset)).is_err());
}

#[test]
fn step_args_merge_over_extra_kwargs() {
    let mut extra = Map::new();
    extra.insert("a".into(), json!(1));
    extra.insert("b".into(), json!(2));
    let merged = merge_step_args(
        extra.clone(),
        &json!({"step": "x", "args": {"b": 3, "c": 4}}),
    )
    .expect("merge");
    assert_eq!(Value::Object(merged), json!({"a": 1, "b": 3, "c": 4}));
    let no_args = merge_step_args(extra.clone(), &json!({"step": "x"})).expect("merge");
    assert_eq!(Value::Object(no_args), json!({"a": 1, "b": 2}));
    assert!(merge_step_args(extra, &json!({"step": "x", "args": [1]})).is_err());
}

#[test]
fn step_errors_are_wrapped_per_kind() {
    let unexpected = StepError::unexpected("RuntimeError", "disk on fire");
    let deploy = unexpected
        .clone()
        .into_step_error(StepKind::Deploy, "write_image");
    assert_eq!(deploy.error_type, "DeploymentError");
    assert_eq!(deploy.message, "Deploy step failed");
    assert_eq!(
        deploy.details,
        "Unexpected exception performing deploy step write_image. RuntimeError: disk on fire"
    );
    let clean = unexpected
        .clone()
        .into_step_error(StepKind::Clean, "erase_devices");
    assert_eq!(clean.error_type, "CleaningError");
    assert!(clean
        .details
        .starts_with("Unexpected exception performing clean step erase_devices."));
    let service = unexpected.into_step_error(StepKind::Service, "burnin_cpu");
    assert_eq!(service.error_type, "ServicingError");
    // Agent errors pass through unchanged.
    let agent = AgentError::new("BlockDeviceEraseError", 500, "Erase failed", "x");
    assert_eq!(
        StepError::Agent(agent.clone()).into_step_error(StepKind::Clean, "erase_devices"),
        agent
    );
    let not_impl =
        StepError::not_implemented("write_image").into_step_error(StepKind::Deploy, "write_image");
    assert!(not_impl
        .details
        .ends_with("NotImplementedError: write_image is not implemented in this agent yet"));
}

#[test]
fn generic_validation_rejects_missing_and_wrong_args() {
    let empty = Map::new();
    let err = generic::validate_step_args("apply_configuration", &empty).expect_err("missing");
    assert!(
        matches!(err, StepError::Unexpected { ref class, ref message }
        if class == "TypeError" && message.contains("'raid_config'"))
    );
    let mut wrong = Map::new();
    wrong.insert("match_patterns".into(), json!("^HD"));
    assert!(generic::validate_step_args("clean_uefi_nvram", &wrong).is_err());
    wrong.insert("match_patterns".into(), json!(["^HD"]));
    assert!(generic::validate_step_args("clean_uefi_nvram", &wrong).is_ok());
    assert!(generic::validate_step_args("write_image", &empty).is_err());
    assert!(generic::validate_step_args("erase_devices", &empty).is_ok());
}

/// write_image reports a bad image_info as prepare_image does (400, before any disk is
/// chosen), and lets a complete one through.
#[test]
fn write_image_validates_image_info_before_choosing_a_disk() {
    let mut args = Map::new();
    args.insert("image_info".into(), json!({"id": "img", "urls": []}));
    let err = generic::validate_step_args("write_image", &args).expect_err("no urls");
    match err {
        StepError::Agent(agent) => assert_eq!(agent.code, 400, "{agent:?}"),
        other => panic!("expected an invalid-params error, got {other:?}"),
    }
    args.insert(
        "image_info".into(),
        json!({"id": "img", "urls": ["http://127.0.0.1:1/img"],
               "os_hash_algo": "sha256", "os_hash_value": "ab"}),
    );
    generic::validate_step_args("write_image", &args).expect("complete image_info");
}

/// Records the methods it is asked for; has `delete_configuration` only.
#[derive(Debug, Default)]
struct RaidRecorder(std::sync::Mutex<Vec<String>>);

impl HardwareManager for RaidRecorder {
    fn class_name(&self) -> &'static str {
        "RaidRecorder"
    }
    fn evaluate_hardware_support(&self) -> HardwareSupport {
        HardwareSupport::MAINLINE
    }
    fn call(
        &self,
        method: &str,
        _ctx: StepContext,
        _args: Map<String, Value>,
    ) -> Option<BoxFuture<'static, StepResult>> {
        if method != "delete_configuration" {
            return None;
        }
        if let Ok(mut calls) = self.0.lock() {
            calls.push(method.to_string());
        }
        Some(Box::pin(async {
            Err(StepError::unexpected("RuntimeError", "no RAID here"))
        }))
    }
}

fn test_context(managers: Arc<ManagerSet>, node: Value) -> StepContext {
    use actix::Actor;
    let config = AgentConfig {
        // No real disk may ever be offered to a step in these tests.
        block_device_allowlist: vec!["/dev/ironic-agent-test-no-such-disk".into()],
        ..AgentConfig::default()
    };
    let runner: Arc<dyn CommandRunner> = Arc::new(crate::host::ProcessRunner::default());
    StepContext {
        kind: Some(StepKind::Deploy),
        node,
        ports: json!([]),
        config: Arc::new(config.clone()),
        allowlist: DeviceAllowlist::new(config.block_device_allowlist.clone()),
        peers: Peers {
            inspector: crate::inspector::HardwareInspector::new(config.clone()).start(),
            installer: crate::installer::InstallerRunner::new(config.clone(), runner.clone())
                .start(),
            systemd: crate::systemd::SystemdSupervisor::new(None).start(),
            ironic: crate::ironic::IronicClient::new(config).start(),
        },
        runner,
        managers,
    }
}

#[actix_rt::test]
async fn install_coreos_tries_raid_removal_unless_cleaning_is_disabled() {
    let recorder = Arc::new(RaidRecorder::default());
    let managers = Arc::new(
        ManagerSet::new(vec![
            Arc::new(CoreOSInstallHardwareManager) as Arc<dyn HardwareManager>,
            recorder.clone(),
        ])
        .expect("managers"),
    );
    let ctx = test_context(managers.clone(), json!({"automated_clean": null}));
    let mut params = Map::new();
    params.insert("step".into(), json!({"step": "install_coreos"}));
    let err = managers
        .clone()
        .execute_step(StepKind::Deploy, params.clone(), ctx)
        .await
        .expect_err("no disk is allowed");
    assert_eq!(err.error_type, "DeviceNotFound", "{err:?}");
    assert_eq!(*recorder.0.lock().expect("lock"), ["delete_configuration"]);

    let ctx = test_context(managers.clone(), json!({"automated_clean": false}));
    assert!(!coreos::try_delete_raid(&ctx).await);
    assert_eq!(recorder.0.lock().expect("lock").len(), 1, "not tried again");

    // Unexpected arguments are a TypeError, as the original's signature.
    let ctx = test_context(managers.clone(), json!({}));
    params.insert(
        "step".into(),
        json!({"step": "install_coreos", "args": {"sleep": 3}}),
    );
    let err = managers
        .execute_step(StepKind::Deploy, params, ctx)
        .await
        .expect_err("bad args");
    assert!(
        err.details
            .ends_with("TypeError: install_coreos() got an unexpected keyword argument 'sleep'"),
        "{err:?}"
    );
}
