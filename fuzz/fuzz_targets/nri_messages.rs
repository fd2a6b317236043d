//! What the NRI plugin reads from the runtime: the 8-byte multiplexer frames, ttrpc messages,
//! the calls they carry, and the container identity in them. The first byte picks the layer;
//! 3 runs the whole path the plugin's read loop runs, in reads of varying size; 4 is containerd's
//! image-store answer (gRPC) the plugin reads on containerd before 2.4.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_nri::{mux, plugin, ttrpc};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else { return };
    match which % 5 {
        0 => {
            let mut d = mux::Decoder::default();
            d.push(rest);
            while let Ok(Some(_)) = d.next_frame() {}
        }
        1 => {
            let mut d = ttrpc::Decoder::default();
            d.push(rest);
            while let Ok(Some(_)) = d.next_message() {}
        }
        2 => {
            if let Ok(plugin::Call::CreateContainer(c)) = plugin::parse_call(1, rest) {
                let _ = plugin::target(c.pod.as_ref(), c.container.as_ref());
            }
        }
        4 => {
            let _ = tollgate_node::containerd_images::target_digest(rest, "r.example/app:v1");
        }
        _ => {
            let cut = usize::from(rest.first().copied().unwrap_or(1)).max(1);
            let (mut frames, mut calls) = (mux::Decoder::default(), ttrpc::Decoder::default());
            for chunk in rest.chunks(cut) {
                frames.push(chunk);
                while let Ok(Some(f)) = frames.next_frame() {
                    if f.conn != mux::PLUGIN_CONN {
                        continue;
                    }
                    calls.push(&f.payload);
                    while let Ok(Some(m)) = calls.next_message() {
                        match plugin::parse_call(m.stream, &m.body) {
                            Ok(plugin::Call::CreateContainer(c)) => {
                                let _ = plugin::target(c.pod.as_ref(), c.container.as_ref());
                            }
                            Ok(plugin::Call::Validate(c)) => {
                                let _ = plugin::target(c.pod.as_ref(), c.container.as_ref());
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
    }
});
