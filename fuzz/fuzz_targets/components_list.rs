//! Components lists (JSON or YAML) and their data: URLs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_controlplane::components;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = components::parse_list(data, "fuzz") {
        for (i, c) in list.iter().enumerate() {
            let _ = c.source(i);
            let _ = c.display_url();
        }
    }
});
