use std::io::Write;

use base64::Engine as _;

use super::*;

fn spec(url: &str, hash: &str, path: &str, extract: bool) -> ComponentSpec {
    ComponentSpec { url: url.into(), hash: hash.into(), install_path: path.into(), extract, mode: None }
}

fn err_text<T: std::fmt::Debug>(r: Result<T, ComponentError>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Builds a tar.gz from raw entries, writing header names byte for byte so
/// that malicious names (`../x`, `/etc/x`) can be expressed.
fn targz(entries: &[RawEntry]) -> Vec<u8> {
    let mut raw = Vec::new();
    for (name, kind, data, link) in entries {
        let mut h = tar::Header::new_gnu();
        let n = name.as_bytes();
        h.as_old_mut().name[..n.len()].copy_from_slice(n);
        h.set_entry_type(*kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o4755);
        if !link.is_empty() {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_cksum();
        raw.extend_from_slice(h.as_bytes());
        raw.extend_from_slice(data);
        raw.resize(raw.len().div_ceil(512) * 512, 0);
    }
    raw.extend_from_slice(&[0u8; 1024]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).unwrap_or_else(|e| panic!("{e}"));
    gz.finish().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn data_urls_decode_base64_and_percent_encoding() {
    let b64 = base64::engine::general_purpose::STANDARD.encode(br#"[{"op":"test"}]"#);
    let s = spec(&format!("data:application/json;base64,{b64}"), "", "/p/a.json", false);
    assert_eq!(s.source(0).ok(), Some(Source::Data(br#"[{"op":"test"}]"#.to_vec())));
    let s = spec("data:,hello%20world%0A", "", "/p/b", false);
    assert_eq!(s.source(0).ok(), Some(Source::Data(b"hello world\n".to_vec())));
    let s = spec("data:;base64,@@@", "", "/p/c", false);
    assert_eq!(err_text(s.source(3)), "component 3 (data:;base64,@@@): data: URL has invalid base64 content");
}

#[test]
fn non_data_urls_need_a_hash_and_a_safe_scheme() {
    assert_eq!(
        err_text(spec("https://dl.k8s.io/kubeadm", "", "/usr/bin/kubeadm", false).source(0)),
        "component 0 (https://dl.k8s.io/kubeadm): a sha256 hash is required for non-data: URLs; add \"hash\": \"sha256:<hex>\""
    );
    let h = Digest::sha256_of(b"x").to_string();
    assert_eq!(
        err_text(spec("http://example.com/x", &h, "/x", false).source(1)),
        "component 1 (http://example.com/x): plain http is refused; use https:// or a local file:// copy"
    );
    assert_eq!(
        err_text(spec("ftp://example.com/x", &h, "/x", false).source(2)),
        "component 2 (ftp://example.com/x): unsupported URL scheme; use data:, file:// or https://"
    );
    assert_eq!(spec("file:///tmp/x", &h, "/x", false).source(0).ok(), Some(Source::File("/tmp/x".into())));
}

#[test]
fn list_validation_names_the_entry() {
    let list = br#"[{"url":"data:,x","install_path":"relative/path"}]"#;
    assert_eq!(
        err_text(parse_list(list, "c.json")),
        "component 0 (data:,x): install_path \"relative/path\" must be absolute"
    );
    let list = br#"[{"url":"data:,x","install_path":"/a/../../etc/passwd"}]"#;
    assert_eq!(
        err_text(parse_list(list, "c.json")),
        "component 0 (data:,x): install_path \"/a/../../etc/passwd\" must not contain '..'"
    );
    let list = br#"[{"url":"data:,x","install_path":"/a","mode":"999"}]"#;
    assert_eq!(
        err_text(parse_list(list, "c.json")),
        "component 0 (data:,x): mode \"999\" must be octal permissions such as \"0755\""
    );
    assert_eq!(err_text(parse_list(b"[]", "c.json")), "components list c.json: the list is empty");
    let legacy = br#"[{"URL":"data:,x","Hash":"","InstallPath":"/a","Extract":false}]"#;
    assert_eq!(parse_list(legacy, "legacy.json").map(|l| l.len()).ok(), Some(1));
    let yaml = b"- url: data:,x\n  install_path: /a\n";
    assert_eq!(parse_list(yaml, "c.yaml").map(|l| l.len()).ok(), Some(1));
}

#[test]
fn hash_mismatch_is_refused_before_anything_is_written() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let s = spec("file:///x", &Digest::sha256_of(b"expected").to_string(), "/bin/tool", false);
    let msg = err_text(plan(&s, 0, b"tampered", root.path()));
    assert!(msg.starts_with("component 0 (file:///x): digest mismatch: expected sha256:"), "{msg}");
    assert!(msg.ends_with("; refusing to install"));
    assert!(!root.path().join("bin").exists());
    Ok(())
}

#[test]
fn single_file_install_is_atomic_moded_and_idempotent() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let s = spec("data:,pinned", "", "/etc/kubernetes/patches/etcd+json.json", false);
    let p = plan(&s, 0, b"pinned", root.path())?;
    let first = apply(&p)?;
    assert_eq!(first[0].outcome, WriteOutcome::Written);
    let path = root.path().join("etc/kubernetes/patches/etcd+json.json");
    assert_eq!(std::fs::read(&path)?, b"pinned");
    assert_eq!(mode_of(&path)?, 0o644);
    assert_eq!(apply(&p)?[0].outcome, WriteOutcome::Unchanged);
    Ok(())
}

#[test]
fn extracts_files_dirs_and_contained_links_without_setuid() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let archive = targz(&[
        ("bin/", tar::EntryType::Directory, b"", ""),
        ("bin/kubelet", tar::EntryType::Regular, b"ELF", ""),
        ("kubelet", tar::EntryType::Symlink, b"", "bin/kubelet"),
    ]);
    let s = spec("file:///k.tgz", &Digest::sha256_of(&archive).to_string(), "/opt/k8s", true);
    let installed = apply(&plan(&s, 0, &archive, root.path())?)?;
    assert_eq!(installed.len(), 4);
    assert_eq!(std::fs::read(root.path().join("opt/k8s/kubelet"))?, b"ELF");
    assert_eq!(mode_of(&root.path().join("opt/k8s/bin/kubelet"))?, 0o755, "setuid bit dropped");
    let again = apply(&plan(&s, 0, &archive, root.path())?)?;
    assert!(again.iter().all(|i| i.outcome == WriteOutcome::Unchanged), "{again:?}");
    Ok(())
}

type RawEntry<'a> = (&'a str, tar::EntryType, &'a [u8], &'a str);

#[test]
fn archive_traversal_and_escaping_links_are_refused() {
    let cases: [(&[RawEntry], &str); 5] = [
        (
            &[("../evil", tar::EntryType::Regular, b"x", "")],
            "archive entry \"../evil\": path escapes the install directory",
        ),
        (
            &[("a/../../evil", tar::EntryType::Regular, b"x", "")],
            "archive entry \"a/../../evil\": path escapes the install directory",
        ),
        (
            &[("up", tar::EntryType::Symlink, b"", "../../etc")],
            "archive entry \"up\": symbolic link to ../../etc points outside the install directory",
        ),
        (
            &[("abs", tar::EntryType::Symlink, b"", "/etc/shadow")],
            "archive entry \"abs\": symbolic link to /etc/shadow points outside the install directory",
        ),
        (
            &[("here", tar::EntryType::Symlink, b"", "."), ("here/x", tar::EntryType::Regular, b"x", "")],
            "archive entry \"here/x\": path goes through a symbolic link from the same archive",
        ),
    ];
    for (entries, want) in cases {
        let archive = targz(entries);
        let s = spec("file:///a.tgz", "", "/opt/x", true);
        let msg = err_text(plan(&s, 7, &archive, Path::new("/nonexistent")));
        assert_eq!(msg, format!("component 7 (file:///a.tgz): {want}"));
    }
    let archive = targz(&[("dev", tar::EntryType::Char, b"", "")]);
    let msg = err_text(plan(&spec("file:///a.tgz", "", "/opt/x", true), 0, &archive, Path::new("/n")));
    assert!(msg.ends_with("only files, directories and contained symbolic links may be extracted"), "{msg}");
    let msg = err_text(plan(&spec("file:///a.tgz", "", "/opt/x", true), 0, b"not gzip", Path::new("/n")));
    assert!(msg.contains("archive entry \"-\""), "{msg}");
}

#[test]
fn an_existing_symlink_is_never_written_through() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    std::fs::create_dir_all(root.path().join("opt"))?;
    std::os::unix::fs::symlink(outside.path().join("target"), root.path().join("opt/tool"))?;
    let s = spec("data:,x", "", "/opt/tool", false);
    let msg = err_text(apply(&plan(&s, 0, b"x", root.path())?));
    assert!(msg.ends_with("a symbolic link is in the way; remove it and retry"), "{msg}");
    assert!(!outside.path().join("target").exists());
    Ok(())
}

/// Reproduced by a review: `d/b -> ..` is confined, and so is
/// `esc -> d/b/d/b/../../../victim` lexically, but the kernel resolves `..`
/// after following `d/b`, three levels above the install root.
#[test]
fn links_that_escape_through_the_archives_other_links_are_refused() {
    let cases: [&[RawEntry]; 3] = [
        &[
            ("d/", tar::EntryType::Directory, b"", ""),
            ("d/b", tar::EntryType::Symlink, b"", ".."),
            ("esc", tar::EntryType::Symlink, b"", "d/b/d/b/../../../victim"),
        ],
        // The escaping link comes first; the link it goes through comes later.
        &[
            ("esc", tar::EntryType::Symlink, b"", "d/b/../victim"),
            ("d/", tar::EntryType::Directory, b"", ""),
            ("d/b", tar::EntryType::Symlink, b"", ".."),
        ],
        // A loop never resolves.
        &[("a", tar::EntryType::Symlink, b"", "b/x"), ("b", tar::EntryType::Symlink, b"", "a/y")],
    ];
    for entries in cases {
        let archive = targz(entries);
        let msg = err_text(plan(&spec("file:///a.tgz", "", "/opt/x", true), 0, &archive, Path::new("/n")));
        assert!(msg.contains("leads outside the install directory through the archive's other links"), "{msg}");
    }
    // Links that stay inside through other links are fine.
    let archive = targz(&[
        ("d/", tar::EntryType::Directory, b"", ""),
        ("d/b", tar::EntryType::Symlink, b"", ".."),
        ("ok", tar::EntryType::Symlink, b"", "d/b/d/b/x"),
    ]);
    assert!(plan(&spec("file:///a.tgz", "", "/opt/x", true), 0, &archive, Path::new("/n")).is_ok());
}

/// A link left on disk by an earlier install (or put there since) is never
/// followed when a later archive writes below the same directory.
#[test]
fn a_later_archive_never_writes_through_a_link_already_on_disk() -> Result<(), Box<dyn std::error::Error>> {
    let root = tempfile::tempdir()?;
    let outside = tempfile::tempdir()?;
    std::fs::create_dir_all(root.path().join("opt/x"))?;
    std::os::unix::fs::symlink(outside.path(), root.path().join("opt/x/esc"))?;
    let archive = targz(&[("esc/pwned.txt", tar::EntryType::Regular, b"x", "")]);
    let s = spec("file:///a.tgz", "", "/opt/x", true);
    let msg = err_text(apply(&plan(&s, 0, &archive, root.path())?));
    assert!(msg.ends_with("a symbolic link is in the way; remove it and retry"), "{msg}");
    assert_eq!(std::fs::read_dir(outside.path())?.count(), 0, "nothing was written outside the root");
    Ok(())
}

/// Regression (found by fuzzing): a multi-byte character across byte 5 made redaction panic.
#[test]
fn redaction_never_splits_a_character() {
    assert_eq!(redact("data\u{39e}pplication"), "data\u{39e}pplication");
    let list = "[{\"url\":\"data\u{39e}x\",\"install_path\":\"/a\"}]";
    assert!(parse_list(list.as_bytes(), "c.json").is_err());
}

#[test]
fn urls_are_redacted_in_messages() {
    assert_eq!(redact("https://user:secret@host.example/path/f?token=abc#x"), "https://host.example/path/f");
    let long = format!("data:application/json;base64,{}", "A".repeat(100));
    assert_eq!(redact(&long), "data:application/json;base64,AAAAAAAAAAA… (129 bytes)");
}

mod link_property {
    use proptest::prelude::*;

    use super::*;

    fn segment() -> impl Strategy<Value = &'static str> {
        prop::sample::select(vec!["a", "b", "d", ".", ".."])
    }

    fn link_path() -> impl Strategy<Value = String> {
        prop::collection::vec(segment(), 1..6).prop_map(|s| s.join("/"))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever links an archive holds: when tollgate accepts it, every
        /// link, once extracted and resolved by the kernel, stays below the
        /// install directory.
        #[test]
        fn accepted_links_resolve_inside_the_root(
            links in prop::collection::vec((prop::sample::select(vec!["a", "b", "d/a", "d/b"]), link_path()), 1..5)
        ) {
            let mut entries: Vec<RawEntry> = vec![("d/", tar::EntryType::Directory, b"", "")];
            let mut seen = Vec::new();
            for (name, target) in &links {
                if !seen.contains(name) {
                    seen.push(*name);
                    entries.push((name, tar::EntryType::Symlink, b"", target.as_str()));
                }
            }
            let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            let s = spec("file:///a.tgz", "", "/x", true);
            let Ok(p) = plan(&s, 0, &targz(&entries), root.path()) else { return Ok(()) };
            apply(&p).unwrap_or_else(|e| panic!("{e}"));
            let top = root.path().join("x").canonicalize().unwrap_or_else(|e| panic!("{e}"));
            for name in seen {
                // Where the link points, as far as the kernel can resolve it:
                // the longest existing prefix of its target (dangling links too).
                let link = root.path().join("x").join(name);
                let Ok(target) = std::fs::read_link(&link) else { continue };
                let full = link.parent().unwrap_or(&top).join(target);
                if let Some(real) = full.ancestors().find_map(|a| a.canonicalize().ok()) {
                    prop_assert!(real.starts_with(&top), "{name}: {} -> {}", full.display(), real.display());
                }
            }
        }
    }
}
