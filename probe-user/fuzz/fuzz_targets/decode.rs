//! Arbitrary ring-buffer records: decoding must never panic, and whatever decodes must survive
//! everything downstream of it (JSON, the event's hazards and hook, correlation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use probe_user::{
    correlate::{Config, Correlator},
    events,
    kernel::flags::FollFlags,
};

fuzz_target!(|data: &[u8]| {
    let mut correlator = Correlator::new(Config::default(), FollFlags::legacy());
    // One input may hold several records: split it at arbitrary record-sized cuts.
    for record in data.chunks(256) {
        let Ok(event) = events::decode(record) else {
            continue;
        };
        let _ = serde_json::to_string(&event).expect("decoded events serialize");
        let _ = (event.kind(), event.hook(), event.hazards());
        let now = event.at_ns();
        correlator.push(event);
        correlator.advance(now);
    }
    let _ = correlator.finish();
});
