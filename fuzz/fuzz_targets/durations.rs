//! Fuzzes the duration strings users type: restic's retention durations (`1y2m3d4h`) and the
//! human durations of RPOs, windows, timeouts and CLI flags (`26h`, `7d`, `1h 30m`): nothing
//! may panic, and what parses prints back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match cairn_retention::parse_duration(text) {
        Ok(d) => {
            let shown = d.to_string();
            let again = cairn_retention::parse_duration(&shown).expect("a shown duration parses");
            assert_eq!(again, d, "{text:?} shown as {shown:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    if let Ok(d) = humantime::parse_duration(text) {
        let shown = humantime::format_duration(d).to_string();
        assert_eq!(humantime::parse_duration(&shown).ok(), Some(d), "{text:?} shown as {shown:?}");
    }
});
