//! Inputs the fuzzer once broke, kept as tests: whatever decodes must encode again and
//! decode to the same message (the property `protocol/fuzz` checks).

use std::path::Path;

fn round_trips(file: &Path) {
    let data = std::fs::read(file).expect("read regression input");
    if let Ok(message) = kiln_protocol::decode::runner_frame(&data) {
        let again = serde_json::to_vec(&message).expect("encode");
        assert_eq!(
            kiln_protocol::decode::runner_frame(&again).ok(),
            Some(message),
            "{} does not survive a round trip",
            file.display()
        );
    }
}

#[test]
fn a_cost_with_more_digits_than_an_f64_holds_survives_a_round_trip() {
    // serde_json's default float parser may be off by one ulp on long decimals, so the
    // re-encoded (shortest) form parsed to a different f64: float_roundtrip fixes that.
    round_trips(Path::new(
        "tests/fuzz_regressions/runner_frame_long_float.json",
    ));
}
