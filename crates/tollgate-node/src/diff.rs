//! A unified diff of two texts, for dry runs that say what they would change.
//!
//! The config edits tollgate makes touch a few adjacent lines, so the common
//! head and tail are trimmed first and the rest is aligned by a longest
//! common subsequence. A middle too large to align cheaply (more than
//! [`MAX_CELLS`] line pairs) is shown as one replaced block, which is still a
//! correct diff, only a less minimal one.

/// Most line pairs aligned by the LCS table (4 Mi cells, 16 MiB).
pub const MAX_CELLS: usize = 4 << 20;

/// Lines of context around each change, as `diff -u`.
const CONTEXT: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Add,
}

/// `old` and `new` as a unified diff with `---`/`+++` headers naming `old_name` and `new_name`.
/// Empty when the texts are equal. A missing old file is diffed as empty.
pub fn unified(old: &str, new: &str, old_name: &str, new_name: &str) -> String {
    if old == new {
        return String::new();
    }
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let ops = align(&a, &b);
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    // Walk the ops, tracking the line number each one has in `a` and `b`.
    let mut positions = Vec::with_capacity(ops.len());
    let (mut i, mut j) = (0usize, 0usize);
    for op in &ops {
        positions.push((i, j));
        match op {
            Op::Keep => {
                i += 1;
                j += 1;
            }
            Op::Remove => i += 1,
            Op::Add => j += 1,
        }
    }
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| ops[k] != Op::Keep).collect();
    let mut k = 0;
    while k < changed.len() {
        // A hunk spans changes whose gaps are at most 2 * CONTEXT kept lines.
        let first = changed[k];
        let mut last = first;
        while k + 1 < changed.len() && changed[k + 1] - last <= 2 * CONTEXT + 1 {
            k += 1;
            last = changed[k];
        }
        k += 1;
        let start = first.saturating_sub(CONTEXT);
        let end = (last + CONTEXT + 1).min(ops.len());
        let (a_start, b_start) = positions[start];
        let a_len = ops[start..end].iter().filter(|o| **o != Op::Add).count();
        let b_len = ops[start..end].iter().filter(|o| **o != Op::Remove).count();
        out.push_str(&format!("@@ -{} +{} @@\n", range(a_start, a_len), range(b_start, b_len)));
        for (op, &(ai, bj)) in ops[start..end].iter().zip(&positions[start..end]) {
            match op {
                Op::Keep => out.push_str(&format!(" {}\n", a[ai])),
                Op::Remove => out.push_str(&format!("-{}\n", a[ai])),
                Op::Add => out.push_str(&format!("+{}\n", b[bj])),
            }
        }
    }
    out
}

/// A hunk range as `diff -u` writes it: 1-based start, and the length unless it is 1.
fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        n => format!("{},{n}", start + 1),
    }
}

/// The edit script from `a` to `b`.
fn align(a: &[&str], b: &[&str]) -> Vec<Op> {
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..].iter().rev().zip(b[head..].iter().rev()).take_while(|(x, y)| x == y).count();
    let (am, bm) = (&a[head..a.len() - tail], &b[head..b.len() - tail]);
    let mut ops = vec![Op::Keep; head];
    if am.len().saturating_mul(bm.len()) > MAX_CELLS {
        ops.extend(std::iter::repeat_n(Op::Remove, am.len()));
        ops.extend(std::iter::repeat_n(Op::Add, bm.len()));
    } else {
        ops.extend(lcs(am, bm));
    }
    ops.extend(std::iter::repeat_n(Op::Keep, tail));
    ops
}

/// The edit script of a longest common subsequence (removals before additions in each change).
fn lcs(a: &[&str], b: &[&str]) -> Vec<Op> {
    let w = b.len() + 1;
    // table[i * w + j]: LCS length of a[i..] and b[j..].
    let mut table = vec![0u32; (a.len() + 1) * w];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            table[i * w + j] = if a[i] == b[j] {
                table[(i + 1) * w + j + 1] + 1
            } else {
                table[(i + 1) * w + j].max(table[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut ops = Vec::with_capacity(a.len() + b.len());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push(Op::Keep);
            i += 1;
            j += 1;
        } else if j == b.len() || (i < a.len() && table[(i + 1) * w + j] >= table[i * w + j + 1]) {
            ops.push(Op::Remove);
            i += 1;
        } else {
            ops.push(Op::Add);
            j += 1;
        }
    }
    ops
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n", "x", "y"), "");
    }

    #[test]
    fn an_added_section_is_one_hunk_with_context() {
        let old = "version = 3\n\n[a]\nx = 1\n\n[b]\ny = 2\n";
        let new = "version = 3\n\n[a]\nx = 1\n\n[v]\nbin_dir = \"/opt\"\n\n[b]\ny = 2\n";
        assert_eq!(
            unified(old, new, "config.toml", "config.toml (new)"),
            "--- config.toml\n+++ config.toml (new)\n@@ -3,5 +3,8 @@\n [a]\n x = 1\n \n+[v]\n+bin_dir = \"/opt\"\n+\n [b]\n y = 2\n"
        );
    }

    #[test]
    fn a_changed_line_is_removed_then_added() {
        let d = unified("a\nb = 1\nc\n", "a\nb = 2\nc\n", "f", "f");
        assert!(d.ends_with("@@ -1,3 +1,3 @@\n a\n-b = 1\n+b = 2\n c\n"), "{d}");
    }

    #[test]
    fn a_new_file_is_all_additions() {
        assert_eq!(
            unified("", "version = 3\n", "/dev/null", "c"),
            "--- /dev/null\n+++ c\n@@ -0,0 +1 @@\n+version = 3\n"
        );
    }

    #[test]
    fn changes_far_apart_are_separate_hunks() {
        let old: String = (0..30).map(|i| format!("{i}\n")).collect();
        let new: String = (0..30)
            .map(|i| match i {
                2 => "two\n".to_owned(),
                25 => "twenty-five\n".to_owned(),
                i => format!("{i}\n"),
            })
            .collect();
        let d = unified(&old, &new, "f", "f");
        assert_eq!(d.matches("@@ ").count(), 2, "{d}");
    }

    /// Applies a unified diff to `old`, as `patch` would, checking every context and removed line.
    fn apply(old: &str, d: &str) -> Option<Vec<String>> {
        let old: Vec<&str> = old.lines().collect();
        let mut out = Vec::new();
        let mut pos = 0;
        for l in d.lines().skip(2) {
            if let Some(header) = l.strip_prefix("@@ -") {
                let spec = header.split(' ').next()?;
                let (start, len) = spec.split_once(',').unwrap_or((spec, "1"));
                let (start, len): (usize, usize) = (start.parse().ok()?, len.parse().ok()?);
                // A hunk that removes or keeps lines starts at line `start`; an insertion follows it.
                let first = if len == 0 { start } else { start - 1 };
                out.extend(old.get(pos..first)?.iter().map(|s| s.to_string()));
                pos = first;
                continue;
            }
            let (tag, rest) = l.split_at(1);
            match tag {
                "+" => out.push(rest.to_owned()),
                "-" | " " => {
                    if *old.get(pos)? != rest {
                        return None;
                    }
                    if tag == " " {
                        out.push(rest.to_owned());
                    }
                    pos += 1;
                }
                _ => return None,
            }
        }
        out.extend(old.get(pos..)?.iter().map(|s| s.to_string()));
        Some(out)
    }

    proptest! {
        /// The diff is exact: applied to the old text it gives the new one.
        #[test]
        fn applying_the_diff_gives_the_new_text(
            a in proptest::collection::vec("[abc]", 0..16),
            b in proptest::collection::vec("[abc]", 0..16),
        ) {
            let (old, new) = (a.join("\n"), b.join("\n"));
            let d = unified(&old, &new, "a", "b");
            prop_assert_eq!(d.is_empty(), old == new);
            if !d.is_empty() {
                let applied = apply(&old, &d);
                prop_assert_eq!(applied, Some(b.clone()), "{}", d);
            }
        }
    }

    #[test]
    fn a_middle_too_large_to_align_is_one_replaced_block() {
        let old: String = (0..3000).map(|i| format!("{i}\n")).collect();
        let new: String = (0..3000).map(|i| format!("{}\n", i * 7)).collect();
        let d = unified(&old, &new, "a", "b");
        let want: Vec<String> = new.lines().map(str::to_owned).collect();
        assert_eq!(apply(&old, &d), Some(want));
    }
}
