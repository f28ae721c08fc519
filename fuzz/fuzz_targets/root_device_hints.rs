//! libFuzzer entry for [`ironic_agent_fuzz::root_device_hints`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironic_agent_fuzz::root_device_hints(data));
