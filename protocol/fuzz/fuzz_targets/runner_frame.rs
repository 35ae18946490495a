//! Fuzzes the control plane's frame handler input: decoding what a runner sends.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = kiln_protocol::decode::runner_frame(data) {
        // Whatever decodes must encode again and decode to the same message.
        let again = serde_json::to_vec(&message).expect("encode");
        assert_eq!(kiln_protocol::decode::runner_frame(&again).ok(), Some(message));
    }
});
