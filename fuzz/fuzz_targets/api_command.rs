//! libFuzzer entry for [`ironic_agent_fuzz::api_command`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironic_agent_fuzz::api_command(data));
