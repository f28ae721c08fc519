//! The test-only manager is loaded only with `IRONIC_AGENT_ENABLE_TEST_MANAGER=1`.
//! (Its own test binary: it changes the process environment.)

use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::errors::StepKind;
use ironic_agent_actors::hardware::{ManagerSet, TEST_MANAGER_ENV};
use serde_json::json;

#[test]
fn test_manager_only_with_the_env_var() {
    std::env::remove_var(TEST_MANAGER_ENV);
    let plain = ManagerSet::standard(&AgentConfig::default());
    let classes: Vec<_> = plain
        .summary()
        .into_iter()
        .map(|(class, _)| class)
        .collect();
    assert_eq!(
        classes,
        ["CoreOSInstallHardwareManager", "GenericHardwareManager"]
    );

    std::env::set_var(TEST_MANAGER_ENV, "0");
    assert_eq!(
        ManagerSet::standard(&AgentConfig::default())
            .summary()
            .len(),
        2
    );

    std::env::set_var(TEST_MANAGER_ENV, "1");
    let with_test = ManagerSet::standard(&AgentConfig::default());
    let classes: Vec<_> = with_test
        .summary()
        .into_iter()
        .map(|(class, _)| class)
        .collect();
    // Sorted by support: SERVICE_PROVIDER, MAINLINE, GENERIC.
    assert_eq!(
        classes,
        [
            "CoreOSInstallHardwareManager",
            "TestingHardwareManager",
            "GenericHardwareManager"
        ]
    );
    assert_eq!(
        with_test.versions()["testing_hardware_manager"],
        json!("1.0")
    );
    let clean = with_test.get_steps(StepKind::Clean, &json!({}), &json!([]));
    let names: Vec<_> = clean["clean_steps"]["TestingHardwareManager"]
        .as_array()
        .expect("testing steps")
        .iter()
        .map(|s| s["step"].clone())
        .collect();
    assert_eq!(names, [json!("test_sleep"), json!("test_fail")]);
    std::env::remove_var(TEST_MANAGER_ENV);
}
