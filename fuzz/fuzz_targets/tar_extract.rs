//! tar.gz archives planned for extraction: never panic, never plan a path outside the target.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tollgate_controlplane::components::{self, ComponentSpec, PlannedEntry};

fuzz_target!(|data: &[u8]| {
    let spec = ComponentSpec {
        url: "file:///fuzz.tgz".into(),
        hash: String::new(),
        install_path: "/opt/x".into(),
        extract: true,
        mode: None,
    };
    if let Ok(plan) = components::plan(&spec, 0, data, Path::new("/root-dir")) {
        for e in plan {
            let p = match &e {
                PlannedEntry::File { path, .. }
                | PlannedEntry::Dir { path, .. }
                | PlannedEntry::Symlink { path, .. } => path,
            };
            assert!(p.starts_with("/root-dir/opt/x"), "planned outside the target: {}", p.display());
        }
    }
});
