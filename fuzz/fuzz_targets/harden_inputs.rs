//! /etc/passwd, /etc/group and /etc/login.defs as harden reads them, then a
//! whole plan and audit over them with the kubeadm manifests.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tollgate_harden::{accounts, audit, logindefs, plan};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = logindefs::parse(Some(text));
    let _ = accounts::parse_group(text);
    if accounts::parse_passwd(text).is_err() {
        return;
    }
    let mut inputs = plan::Inputs { passwd: text.to_owned(), group: String::new(), ..Default::default() };
    inputs.manifests.insert(
        tollgate_harden::security::Component::KubeScheduler,
        b"spec:\n  containers:\n  - name: kube-scheduler\n    command: [kube-scheduler]\n".to_vec(),
    );
    if let Ok(p) = plan::plan(&inputs) {
        let _ = audit::audit(&inputs, &p, audit::Profile::Hardened);
        // Appending the planned lines must give files that parse and need nothing more.
        let passwd = accounts::append(&inputs.passwd, &p.accounts.passwd_lines);
        assert!(accounts::parse_passwd(&passwd).is_ok());
    }
});
