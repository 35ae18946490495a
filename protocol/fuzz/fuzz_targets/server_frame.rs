//! Fuzzes the runner's frame handler input: decoding what the control plane sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = kiln_protocol::decode::server_frame(data) {
        let again = serde_json::to_vec(&message).expect("encode");
        assert_eq!(kiln_protocol::decode::server_frame(&again).ok(), Some(message));
    }
});
